package lifecycle

import (
	"berth/internal/wildcard"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Image is what evaluation needs to know about one image (manifest) of a
// repository.
type Image struct {
	Digest string
	Tags   []string
	// PushedAt is when the image was pushed.
	PushedAt time.Time
	// LastPulledAt is the last recorded pull; zero if never pulled, in
	// which case sinceImagePulled counts from PushedAt, as ECR does.
	LastPulledAt time.Time
	// Size in bytes, used only by Summarize.
	Size int64
}

// Result is one image the policy expires.
type Result struct {
	Digest       string
	Tags         []string
	RulePriority int    // the rule that expires the image
	Reason       string // human-readable explanation
	PushedAt     time.Time
	Size         int64
}

// CompareResults orders results the way Evaluate returns them: by rule
// priority, then push time newest first, then digest.
func CompareResults(a, b Result) int {
	if c := cmp.Compare(a.RulePriority, b.RulePriority); c != 0 {
		return c
	}
	if c := b.PushedAt.Compare(a.PushedAt); c != 0 {
		return c
	}
	return strings.Compare(a.Digest, b.Digest)
}

// Evaluate returns the images that p expires at instant now, with ECR's
// semantics (see the package documentation). It has no side effects: it
// neither modifies images nor deletes anything.
//
// Evaluate does not validate p: pass a policy returned by Parse or one that
// passed Validate. As a safety net, a rule with an unknown tagStatus or
// countType, a tagged rule without tag filters, or a countNumber below 1
// expires nothing. Digests are expected to be
// unique. The result is ordered by RulePriority, then PushedAt newest first,
// then Digest; it is nil when nothing expires.
func Evaluate(p *Policy, images []Image, now time.Time) []Result {
	if p == nil || len(images) == 0 {
		return nil
	}
	rules := slices.Clone(p.Rules)
	slices.SortStableFunc(rules, func(a, b Rule) int { return cmp.Compare(a.RulePriority, b.RulePriority) })

	// Newest first, then digest: the order imageCountMoreThan keeps in and
	// the order of the output.
	order := make([]int, len(images))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return newestFirst(&images[a], &images[b]) })

	// claimed[i]: image i matched the tag selection of an earlier (higher
	// priority) rule, so no later rule may expire it. Every expired image
	// is claimed.
	claimed := make([]bool, len(images))
	var out []Result
	for _, r := range rules {
		var matched []int // indexes into images, newest first
		for _, i := range order {
			if r.Selection.matches(images[i].Tags) {
				matched = append(matched, i)
			}
		}
		for pos, i := range matched {
			if claimed[i] {
				continue // identified (and counted) but protected
			}
			if reason, ok := r.Selection.expires(&images[i], pos, len(matched), now); ok {
				out = append(out, result(&images[i], r.RulePriority, reason))
			}
		}
		for _, i := range matched {
			claimed[i] = true
		}
	}
	// Rules are processed in priority order and images newest first, so
	// out is already ordered, except for rules sharing a priority in an
	// unvalidated policy.
	slices.SortStableFunc(out, CompareResults)
	return out
}

func newestFirst(a, b *Image) int {
	if c := b.PushedAt.Compare(a.PushedAt); c != 0 {
		return c
	}
	return strings.Compare(a.Digest, b.Digest)
}

func result(img *Image, priority int, reason string) Result {
	return Result{
		Digest:       img.Digest,
		Tags:         slices.Clone(img.Tags),
		RulePriority: priority,
		Reason:       fmt.Sprintf("rule %d: %s", priority, reason),
		PushedAt:     img.PushedAt,
		Size:         img.Size,
	}
}

// matches reports whether an image with these tags meets the tagging
// requirements of s (tagStatus and tag lists), ignoring the count criterion.
func (s *Selection) matches(tags []string) bool {
	switch s.TagStatus {
	case TagStatusAny:
		return true
	case TagStatusUntagged:
		return len(tags) == 0
	case TagStatusTagged:
		if len(tags) == 0 {
			return false
		}
		switch {
		case s.TagPrefixList != nil:
			return allMatch(s.TagPrefixList, tags, strings.HasPrefix)
		case s.TagPatternList != nil:
			return allMatch(s.TagPatternList, tags, func(tag, pattern string) bool { return wildcardMatch(pattern, tag) })
		}
	}
	return false
}

// allMatch reports whether every filter matches at least one tag. An empty
// filter list matches nothing (such a policy does not validate).
func allMatch(filters, tags []string, match func(tag, filter string) bool) bool {
	if len(filters) == 0 {
		return false
	}
	for _, f := range filters {
		if !slices.ContainsFunc(tags, func(t string) bool { return match(t, f) }) {
			return false
		}
	}
	return true
}

// wildcardMatch reports whether s matches pattern in full, where '*' matches
// any sequence of characters (including none).
func wildcardMatch(pattern, s string) bool { return wildcard.Match(pattern, s) }

// expires applies the count criterion of s to img, the pos-th (from 0) of
// total images matching s, newest first. It returns the reason when img
// expires.
func (s *Selection) expires(img *Image, pos, total int, now time.Time) (string, bool) {
	switch s.CountType {
	case CountImageCountMoreThan:
		if s.CountNumber < 1 || pos < s.CountNumber {
			return "", false
		}
		return fmt.Sprintf("imageCountMoreThan %d: image %d of %d matching, newest first",
			s.CountNumber, pos+1, total), true
	case CountSinceImagePushed:
		if !olderThanDays(img.PushedAt, s.CountNumber, now) {
			return "", false
		}
		return fmt.Sprintf("sinceImagePushed %d days: pushed %d days ago",
			s.CountNumber, daysSince(img.PushedAt, now)), true
	case CountSinceImagePulled:
		if img.LastPulledAt.IsZero() {
			if !olderThanDays(img.PushedAt, s.CountNumber, now) {
				return "", false
			}
			return fmt.Sprintf("sinceImagePulled %d days: never pulled, pushed %d days ago",
				s.CountNumber, daysSince(img.PushedAt, now)), true
		}
		if !olderThanDays(img.LastPulledAt, s.CountNumber, now) {
			return "", false
		}
		return fmt.Sprintf("sinceImagePulled %d days: last pulled %d days ago",
			s.CountNumber, daysSince(img.LastPulledAt, now)), true
	}
	return "", false
}

// olderThanDays reports whether t is strictly more than n days (of 24 hours)
// before now.
func olderThanDays(t time.Time, n int, now time.Time) bool {
	if n < 1 {
		return false // invalid rule: expire nothing
	}
	return t.Before(now.UTC().AddDate(0, 0, -n))
}

func daysSince(t, now time.Time) int64 {
	return int64(now.Sub(t) / (24 * time.Hour))
}
