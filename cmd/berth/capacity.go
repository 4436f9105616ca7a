package main

import (
	"context"
	"sync/atomic"

	"berth/config"
	"berth/reclaim"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// capacity holds what a config reload changes for the capacity policy
// (package reclaim): the cache limits and the rules that name pinned
// images.
type capacity struct {
	store *store.Store
	cur   atomic.Pointer[capSettings]
}

type capSettings struct {
	cfg    config.Cache
	router *upstream.Router
}

func (c *capacity) settings() *capSettings { return c.cur.Load() }

// update takes new limits and rules from a config reload.
func (c *capacity) update(cfg config.Cache, router *upstream.Router) {
	c.cur.Store(&capSettings{cfg: cfg, router: router})
}

// limits are the reclaim settings of the config in force.
func (c *capacity) limits() reclaim.Settings {
	cfg := c.settings().cfg
	return reclaim.Settings{MaxBytes: cfg.MaxBytes, HighWatermark: cfg.HighWatermark, LowWatermark: cfg.LowWatermark,
		MinFreeBytes: cfg.MinFreeBytes, EvictInterval: cfg.EvictInterval}
}

// pinned reports whether a cached image is pinned by cache.pinned.
func (c *capacity) pinned(up, repo, digest string) bool {
	cur := c.settings()
	for _, p := range cur.cfg.Pinned {
		name, ref := config.SplitRef(p)
		t, err := cur.router.RouteCanonical(name)
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
			if tag, err := c.store.GetTag(context.Background(), up, repo, ref); err == nil && tag.Digest == digest {
				return true
			}
		}
	}
	return false
}
