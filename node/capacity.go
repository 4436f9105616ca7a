package node

import (
	"context"

	"berth/config"
	"berth/reclaim"
	"berth/registry"
)

// capacityLimits are the reclaim settings of the config in force.
func (n *Node) capacityLimits() reclaim.Settings {
	c := n.Live().Config.Cache
	return reclaim.Settings{MaxBytes: c.MaxBytes, HighWatermark: c.HighWatermark, LowWatermark: c.LowWatermark,
		MinFreeBytes: c.MinFreeBytes, EvictInterval: c.EvictInterval}
}

// pinned reports whether a cached image is pinned: by cache.pinned (names
// are canonical, as docs/design.md says) in the config in force, by a sync
// rule with pin: true, or through the admin API (pin-image).
func (n *Node) pinned(up, repo, digest string) bool {
	if n.sync != nil && n.sync.Pinned(context.Background(), up, repo, digest) {
		return true
	}
	if n.admin != nil && n.admin.StoredPin(context.Background(), up, repo, digest) {
		return true
	}
	rt := n.Live()
	for _, p := range rt.Config.Cache.Pinned {
		name, ref := config.SplitRef(p)
		t, err := rt.Router.RouteCanonical(name)
		if err != nil || t.Upstream.Rule.Name != up || t.Repo != repo {
			continue
		}
		switch {
		case ref == "":
			return true
		case registry.IsDigest(ref):
			if ref == digest {
				return true
			}
		default:
			if tag, err := n.store.GetTag(context.Background(), up, repo, ref); err == nil && tag.Digest == digest {
				return true
			}
		}
	}
	return false
}
