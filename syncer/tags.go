package syncer

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"berth/config"
	"berth/internal/semver"
	"berth/internal/wildcard"
)

// selector picks the tags a rule syncs.
type selector struct {
	re     *regexp.Regexp
	semver *semver.Constraint
	latest int
}

func newSelector(t config.SyncTags) (selector, error) {
	s := selector{latest: t.Latest}
	if t.Regex != "" {
		re, err := regexp.Compile(`^(?:` + t.Regex + `)$`)
		if err != nil {
			return selector{}, fmt.Errorf("tags.regex: %w", err)
		}
		s.re = re
	}
	if t.Semver != "" {
		c, err := semver.ParseConstraint(t.Semver)
		if err != nil {
			return selector{}, fmt.Errorf("tags.semver: %w", err)
		}
		s.semver = &c
	}
	return s, nil
}

// pick returns the selected tags: those the regex and the constraint
// allow, then the latest N of them by version (tags that are not versions
// rank below every version, by name).
func (s selector) pick(tags []string) []string {
	var out []string
	for _, t := range tags {
		if strings.HasPrefix(t, "~") || s.re != nil && !s.re.MatchString(t) {
			continue
		}
		if s.semver != nil {
			v, ok := semver.Parse(t)
			if !ok || !s.semver.Allows(v) {
				continue
			}
		}
		out = append(out, t)
	}
	if s.latest > 0 && len(out) > s.latest {
		slices.SortFunc(out, func(a, b string) int { return -compareTags(a, b) })
		out = out[:s.latest]
	}
	slices.Sort(out)
	return out
}

func compareTags(a, b string) int {
	va, oka := semver.Parse(a)
	vb, okb := semver.Parse(b)
	switch {
	case oka && okb:
		if c := semver.Compare(va, vb); c != 0 {
			return c
		}
	case oka:
		return 1
	case okb:
		return -1
	}
	return strings.Compare(a, b)
}

// matchPlatform reports whether an index child's platform is one of want
// ("os/arch" or "os/arch/variant"); every child matches an empty list.
func matchPlatform(want []string, os, arch, variant string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		parts := strings.Split(w, "/")
		if parts[0] == os && parts[1] == arch && (len(parts) == 2 || parts[2] == variant) {
			return true
		}
	}
	return false
}

// isPattern reports whether a repositories entry is a pattern, matched
// against the upstream's catalog.
func isPattern(repo string) bool { return strings.Contains(repo, "*") }

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if wildcard.Match(p, name) {
			return true
		}
	}
	return false
}
