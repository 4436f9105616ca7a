package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"berth/internal/semver"
)

// SyncRule fills the cache ahead of clients: on every Interval, the tags of
// Repositories at Upstream that Tags selects are pulled through Berth, as
// a client pull would.
type SyncRule struct {
	// Name identifies the rule in describe-sync, sync-now and metrics.
	Name string `yaml:"name"`
	// Upstream is the name of the upstream rule to sync from.
	Upstream string `yaml:"upstream"`
	// Repositories are names at the upstream ("library/alpine", or
	// "alpine" on Docker Hub); a "*" pattern is matched against the
	// upstream's catalog.
	Repositories []string `yaml:"repositories"`
	// Tags selects the tags of each repository; empty selects every tag.
	Tags SyncTags `yaml:"tags"`
	// Platforms limits an index's children to these ("linux/amd64",
	// "linux/arm64/v8"); empty takes every child.
	Platforms []string `yaml:"platforms"`
	// Referrers also fills each synced manifest's referrers (signatures,
	// SBOMs).
	Referrers bool `yaml:"referrers"`
	// Interval is the time between runs (default 1h).
	Interval time.Duration `yaml:"interval"`
	// Pin keeps the images the rule selects from eviction.
	Pin bool `yaml:"pin"`
}

// SyncTags selects tags; every condition given must hold.
type SyncTags struct {
	// Regex must match the whole tag.
	Regex string `yaml:"regex"`
	// Semver is a version constraint such as ">=1.20, <2"; tags that are
	// not versions are left out.
	Semver string `yaml:"semver"`
	// Latest keeps only the N highest versions of the tags selected so far
	// (tags that are not versions rank below every version); 0 keeps all.
	Latest int `yaml:"latest"`
}

// DefaultSyncInterval is a sync rule's interval when it gives none.
const DefaultSyncInterval = time.Hour

// WithDefaults returns r with an empty interval filled in.
func (r SyncRule) WithDefaults() SyncRule {
	if r.Interval == 0 {
		r.Interval = DefaultSyncInterval
	}
	return r
}

// validateSync checks the sync rules against the upstream rules.
func validateSync(rules []SyncRule, ups []Upstream) []error {
	var errs []error
	names := map[string]bool{}
	known := map[string]bool{}
	for _, u := range ups {
		known[u.Name] = true
	}
	for i, r := range rules {
		at := fmt.Sprintf("sync[%d]", i)
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", at))
		case names[r.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, r.Name))
		case !validComponent(r.Name):
			errs = append(errs, fmt.Errorf("%s.name: %q must be lower-case letters, digits, '-', '_' or '.'", at, r.Name))
		}
		names[r.Name] = true
		if r.Upstream == "" {
			errs = append(errs, fmt.Errorf("%s.upstream: required (the name of an upstream rule)", at))
		} else if !known[r.Upstream] {
			errs = append(errs, fmt.Errorf("%s.upstream: %q is not the name of an upstream rule", at, r.Upstream))
		}
		if len(r.Repositories) == 0 {
			errs = append(errs, fmt.Errorf("%s.repositories: list at least one repository", at))
		}
		for j, repo := range r.Repositories {
			if repo == "" || strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/") || strings.ContainsAny(repo, ":@ ") {
				errs = append(errs, fmt.Errorf("%s.repositories[%d]: %q is not a repository name or pattern", at, j, repo))
			}
		}
		if r.Tags.Regex != "" {
			if _, err := regexp.Compile(r.Tags.Regex); err != nil {
				errs = append(errs, fmt.Errorf("%s.tags.regex: %w", at, err))
			}
		}
		if r.Tags.Semver != "" {
			if _, err := semver.ParseConstraint(r.Tags.Semver); err != nil {
				errs = append(errs, fmt.Errorf("%s.tags.semver: %w", at, err))
			}
		}
		if r.Tags.Latest < 0 {
			errs = append(errs, fmt.Errorf("%s.tags.latest: must not be negative", at))
		}
		for j, p := range r.Platforms {
			if err := CheckPlatform(p); err != nil {
				errs = append(errs, fmt.Errorf("%s.platforms[%d]: %w", at, j, err))
			}
		}
		if r.Interval < 0 {
			errs = append(errs, fmt.Errorf("%s.interval: must not be negative", at))
		}
	}
	return errs
}

// Bundles sets how bundles are imported (berth import).
type Bundles struct {
	// VerifyKeys are public key files (berth keygen's .pub): when set,
	// the node imports only bundles signed by one of them, whatever key
	// the client sends.
	VerifyKeys []string `yaml:"verifyKeys"`
}

func (b Bundles) validate() []error {
	var errs []error
	seen := map[string]bool{}
	for i, k := range b.VerifyKeys {
		switch {
		case k == "":
			errs = append(errs, fmt.Errorf("bundles.verifyKeys[%d]: empty; name a public key file made by berth keygen", i))
		case seen[k]:
			errs = append(errs, fmt.Errorf("bundles.verifyKeys[%d]: %q is listed twice", i, k))
		}
		seen[k] = true
	}
	return errs
}

// CheckPlatform checks a platform as sync rules and warm name one:
// "os/arch" or "os/arch/variant".
func CheckPlatform(p string) error {
	if parts := strings.Split(p, "/"); len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("%q is not os/arch or os/arch/variant", p)
	}
	return nil
}
