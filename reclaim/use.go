package reclaim

import "time"

// This file is the one rule of what counts as use of an image. Kubernetes
// pulls by digest, often the digest of one platform's manifest out of an
// index: a pull of a manifest by digest records a pull of its image
// record, which is the image every tag pointing at that digest names, and
// a pull of any image of a family (an index and the manifests it lists,
// all the way down; a manifest and its referrers) is a use of the whole
// family. Eviction and lifecycle read the family's last use, so an image
// in daily use is never idle because clients reach it by another digest.

// shareUse gives every key of used the latest time of its family: holders
// maps a key to the keys holding it (an index listing it, the subject it
// refers to). Keys missing from used are not part of any family.
func shareUse[K comparable](used map[K]time.Time, holders map[K][]K) {
	// Content addressing rules out cycles, so this ends; families are
	// shallow (an index, its children, their referrers).
	for changed := true; changed; {
		changed = false
		for k, hs := range holders {
			t, ok := used[k]
			if !ok {
				continue
			}
			for _, h := range hs {
				ht, ok := used[h]
				switch {
				case !ok:
				case t.After(ht):
					used[h], changed = t, true
				case ht.After(t):
					used[k], t, changed = ht, ht, true
				}
			}
		}
	}
}
