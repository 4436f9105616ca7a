package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"berth/internal/wildcard"

	"gopkg.in/yaml.v3"
)

// Freshness is how long a cached tag is served without asking the
// upstream: a duration (0 asks with a HEAD on every pull) or Never.
type Freshness time.Duration

// Never pins a cached tag's digest until the operator refreshes it
// (deleting the tag with batch-delete-image; see docs/configuration.md).
const Never Freshness = -1

// UnmarshalYAML reads "never" or a duration that is not negative.
func (f *Freshness) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("not a scalar")
	}
	if n.Value == "never" {
		*f = Never
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return err
	}
	if d < 0 {
		return errors.New("negative")
	}
	*f = Freshness(d)
	return nil
}

// String is "never" or the duration.
func (f Freshness) String() string {
	if f == Never {
		return "never"
	}
	return time.Duration(f).String()
}

// Fresh reports whether a tag confirmed by the upstream age ago is served
// without asking it again.
func (f Freshness) Fresh(age time.Duration) bool {
	return f == Never || age < time.Duration(f)
}

// TagPolicy gives the tags matching any of Tags ("*" stands for any run of
// characters) their own freshness.
type TagPolicy struct {
	Tags []string `yaml:"tags"`
	// TTL is required: "0s" revalidates on every pull, "never" pins.
	TTL *Freshness `yaml:"ttl"`
}

// What a rule does when its upstream answers 404 for a cached tag.
const (
	// OnDeleteForget forgets the cached tag (the default).
	OnDeleteForget = "forget"
	// OnDeleteKeep keeps serving the cached digest, and logs it.
	OnDeleteKeep = "keep"
)

// TagFreshness is the freshness of tag under r: the first of r's tag
// policies that matches it, else the rule's ttl; policy names which, for
// describe-images ("tagPolicies[0]" or "ttl").
func (r Upstream) TagFreshness(tag string) (f Freshness, policy string) {
	for i, p := range r.TagPolicies {
		for _, pat := range p.Tags {
			if p.TTL != nil && wildcard.Match(pat, tag) {
				return *p.TTL, fmt.Sprintf("tagPolicies[%d]", i)
			}
		}
	}
	return Freshness(r.WithDefaults().TTL), "ttl"
}

// KeepsDeletedTags reports whether onUpstreamDelete is keep.
func (r Upstream) KeepsDeletedTags() bool { return r.OnUpstreamDelete == OnDeleteKeep }

// validateFreshness checks r's tagPolicies and onUpstreamDelete.
func validateFreshness(at string, r Upstream) []error {
	var errs []error
	for i, p := range r.TagPolicies {
		pat := fmt.Sprintf("%s.tagPolicies[%d]", at, i)
		if len(p.Tags) == 0 {
			errs = append(errs, fmt.Errorf("%s.tags: required: a list of tags or patterns such as [latest, \"v*\"]", pat))
		}
		for j, t := range p.Tags {
			if !validTagPattern(t) {
				errs = append(errs, fmt.Errorf("%s.tags[%d]: %q is not a tag or a pattern of one (letters, digits, _ . - and *, at most 128)", pat, j, t))
			}
		}
		if p.TTL == nil {
			errs = append(errs, fmt.Errorf("%s.ttl: required: a duration such as 0s (ask on every pull) or 720h, or never", pat))
		}
	}
	switch r.OnUpstreamDelete {
	case "", OnDeleteForget, OnDeleteKeep:
	default:
		errs = append(errs, fmt.Errorf("%s.onUpstreamDelete: must be forget or keep, not %q", at, r.OnUpstreamDelete))
	}
	return errs
}

func validTagPattern(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-*") == ""
}
