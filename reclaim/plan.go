package reclaim

import (
	"fmt"
	"slices"
	"time"

	"berth/lifecycle"
)

// Plan returns the images that p expires at now, with ECR's semantics
// (package lifecycle), over the images of one repository. Images another
// image of the repository needs are not evaluated on their own: the
// children of an index and the referrers of a manifest (signatures, SBOMs)
// follow it. They expire, with the rule of the image that held them, once
// every image that holds them expires; until then they stay. So an
// untagged rule does not strip the platforms out of a tagged multi-arch
// image, and its signatures go with it.
//
// An image's last pull is its family's (an index's includes its children's).
//
// The result is ordered by rule priority, then push time newest first,
// then digest.
func Plan(p *lifecycle.Policy, images []ImageInfo, now time.Time) []lifecycle.Result {
	if p == nil || len(images) == 0 {
		return nil
	}
	byDigest := make(map[string]*ImageInfo, len(images))
	for i := range images {
		byDigest[images[i].Digest] = &images[i]
	}
	// holders[d]: the images of this repository that keep d (an index
	// listing it, or the subject it refers to).
	holders := map[string][]string{}
	for _, im := range images {
		for _, c := range im.Children {
			if _, ok := byDigest[c]; ok && c != im.Digest {
				holders[c] = append(holders[c], im.Digest)
			}
		}
		if _, ok := byDigest[im.Subject]; ok && im.Subject != im.Digest {
			holders[im.Digest] = append(holders[im.Digest], im.Subject)
		}
	}
	// A pull of any image of a family is a pull of the image that holds
	// it (see use.go): an index whose platforms are pulled by digest is
	// not idle.
	pulled := make(map[string]time.Time, len(images))
	for _, im := range images {
		pulled[im.Digest] = im.LastPulledAt
	}
	shareUse(pulled, holders)
	var roots []lifecycle.Image
	for _, im := range images {
		if len(holders[im.Digest]) == 0 {
			roots = append(roots, lifecycle.Image{Digest: im.Digest, Tags: im.Tags,
				PushedAt: im.PushedAt, LastPulledAt: pulled[im.Digest], Size: im.Size})
		}
	}
	out := lifecycle.Evaluate(p, roots, now)
	expired := map[string]int{} // digest -> index in out
	for i, res := range out {
		expired[res.Digest] = i
	}
	// Dependents go once all their holders go; repeat for nested ones (an
	// index's child's signature). Content addressing rules out cycles.
	for changed := true; changed; {
		changed = false
		for _, im := range images {
			hs := holders[im.Digest]
			if len(hs) == 0 {
				continue
			}
			if _, done := expired[im.Digest]; done {
				continue
			}
			if !allExpired(hs, expired) {
				continue
			}
			by := out[expired[hs[0]]]
			out = append(out, lifecycle.Result{
				Digest: im.Digest, Tags: slices.Clone(im.Tags), RulePriority: by.RulePriority,
				Reason:   fmt.Sprintf("rule %d: goes with %s, which holds it and expires", by.RulePriority, hs[0]),
				PushedAt: im.PushedAt, Size: im.Size,
			})
			expired[im.Digest] = len(out) - 1
			changed = true
		}
	}
	slices.SortStableFunc(out, lifecycle.CompareResults)
	return out
}

func allExpired(ds []string, expired map[string]int) bool {
	for _, d := range ds {
		if _, ok := expired[d]; !ok {
			return false
		}
	}
	return true
}
