package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"berth/config"
	"berth/local"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
)

// capacity keeps the store within cache.maxBytes and the disk above
// cache.minFreeBytes by evicting cached content.
type capacity struct {
	dir     string
	store   *store.Store
	repos   *local.Repos
	log     *zap.Logger
	onEvict func(n int)

	mu sync.Mutex // one eviction at a time
	// cur holds what a config reload changes: limits and rules.
	cur atomic.Pointer[capSettings]
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

// freeBytes is the free space of the data directory's file system.
func (c *capacity) freeBytes() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// target is the store size eviction should reach to leave room for extra
// more bytes, and whether eviction is due at all.
func (c *capacity) target(extra int64, periodic bool) (int64, bool) {
	cfg := c.settings().cfg
	used := c.store.Stats().BlobBytes
	target, due := used, false
	if cfg.MaxBytes > 0 {
		high := int64(float64(cfg.MaxBytes) * cfg.HighWatermark)
		low := int64(float64(cfg.MaxBytes) * cfg.LowWatermark)
		if used+extra > high || !periodic && used+extra > cfg.MaxBytes {
			target, due = min(target, low-extra), true
		}
	}
	if cfg.MinFreeBytes > 0 {
		if free := c.freeBytes(); free >= 0 && free-extra < cfg.MinFreeBytes {
			target, due = min(target, used-(cfg.MinFreeBytes-(free-extra))), true
		}
	}
	return max(target, 0), due
}

// check evicts when the store is past its high watermark or the disk below
// its floor; it runs on a timer.
func (c *capacity) check(ctx context.Context) {
	if t, due := c.target(0, true); due {
		c.evict(ctx, t)
	}
}

func (c *capacity) evict(ctx context.Context, target int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep, err := c.repos.Evict(ctx, target, c.pinned)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("eviction failed", zap.Error(err))
	}
	if c.onEvict != nil && rep.BlobsEvicted > 0 {
		c.onEvict(rep.BlobsEvicted)
	}
}

// reserve makes room for a fill or upload of size bytes, or refuses it
// with 507 when nothing more can be evicted.
func (c *capacity) reserve(ctx context.Context, size int64) error {
	cfg := c.settings().cfg
	t, due := c.target(size, false)
	if !due {
		return nil
	}
	c.evict(ctx, t)
	used := c.store.Stats().BlobBytes
	full := cfg.MaxBytes > 0 && used+size > cfg.MaxBytes
	lowDisk := false
	if cfg.MinFreeBytes > 0 {
		if free := c.freeBytes(); free >= 0 && free-size < cfg.MinFreeBytes {
			lowDisk = true
		}
	}
	if !full && !lowDisk {
		return nil
	}
	msg := fmt.Sprintf("the store is full (%d of %d bytes used, %d more needed) and nothing more can be evicted", used, cfg.MaxBytes, size)
	if lowDisk {
		msg = fmt.Sprintf("the disk holding the store has less than %d bytes free and nothing more can be evicted", cfg.MinFreeBytes)
	}
	c.log.Warn("refusing a fill: no room", zap.Int64("size", size), zap.Int64("used", used))
	return &registry.Error{Status: http.StatusInsufficientStorage, Code: "INSUFFICIENT_STORAGE", Message: msg}
}

// pinned reports whether a cached image is pinned by cache.pinned.
func (c *capacity) pinned(up, repo, digest string) bool {
	cur := c.settings()
	for _, p := range cur.cfg.Pinned {
		name, ref := config.SplitRef(p)
		t, err := cur.router.Route("", name)
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

// run checks capacity every interval until ctx ends.
func (c *capacity) run(ctx context.Context) {
	t := time.NewTicker(c.settings().cfg.EvictInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if cfg := c.settings().cfg; cfg.MaxBytes > 0 || cfg.MinFreeBytes > 0 {
				c.check(ctx)
			}
		}
	}
}
