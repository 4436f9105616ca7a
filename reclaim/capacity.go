package reclaim

import (
	"berth/errdefs"
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Settings are the capacity limits (the config's cache section).
type Settings struct {
	// MaxBytes caps the store's blob bytes (0: no cap). Past
	// HighWatermark×MaxBytes cached content is evicted down to
	// LowWatermark×MaxBytes.
	MaxBytes                    int64
	HighWatermark, LowWatermark float64
	// MinFreeBytes evicts when the data directory's file system has less
	// free space than this (0: no floor).
	MinFreeBytes int64
	// EvictInterval is how often Run checks.
	EvictInterval time.Duration
}

// Limited reports whether any limit is set.
func (s Settings) Limited() bool { return s.MaxBytes > 0 || s.MinFreeBytes > 0 }

// Target is the store size eviction should reach so that extra more bytes
// fit, and whether eviction is due at all. used is the store's blob bytes,
// free the file system's free bytes (negative: unknown). A periodic check
// is due past the high watermark; a reservation (periodic false) also
// when the bytes would not fit under MaxBytes.
func Target(s Settings, used, extra, free int64, periodic bool) (target int64, due bool) {
	target = used
	if s.MaxBytes > 0 {
		high := int64(float64(s.MaxBytes) * s.HighWatermark)
		low := int64(float64(s.MaxBytes) * s.LowWatermark)
		if used+extra > high || !periodic && used+extra > s.MaxBytes {
			target, due = min(target, low-extra), true
		}
	}
	if s.MinFreeBytes > 0 && free >= 0 && free-extra < s.MinFreeBytes {
		target, due = min(target, used-(s.MinFreeBytes-(free-extra))), true
	}
	return max(target, 0), due
}

// noRoom says why extra more bytes do not fit after eviction: the store
// is over MaxBytes, or the disk under MinFreeBytes. It is "" when they fit.
func noRoom(s Settings, used, extra, free int64) string {
	if s.MinFreeBytes > 0 && free >= 0 && free-extra < s.MinFreeBytes {
		return fmt.Sprintf("the disk holding the store has less than %d bytes free and nothing more can be evicted", s.MinFreeBytes)
	}
	if s.MaxBytes > 0 && used+extra > s.MaxBytes {
		return fmt.Sprintf("the store is full (%d of %d bytes used, %d more needed) and nothing more can be evicted", used, s.MaxBytes, extra)
	}
	return ""
}

// CapacityOptions configure a Capacity.
type CapacityOptions struct {
	// Dir is the data directory, whose file system's free space counts.
	Dir string
	// Settings returns the limits in force; it is asked on every check,
	// so a config reload takes effect at once.
	Settings func() Settings
	// Pinned, when set, names cached images never evicted.
	Pinned Pinned
	// OnEvict is told how many blobs an eviction removed.
	OnEvict func(blobs int)
	Logger  *zap.Logger
}

// Capacity keeps the store within its limits by evicting cached content.
type Capacity struct {
	r    *Reclaimer
	opts CapacityOptions
	mu   sync.Mutex // one eviction at a time
}

// Capacity returns the capacity policy over r's store.
func (r *Reclaimer) Capacity(opts CapacityOptions) *Capacity {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Capacity{r: r, opts: opts}
}

// freeBytes is the free space of the data directory's file system, or -1.
func (c *Capacity) freeBytes() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.opts.Dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

func (c *Capacity) used() int64 { return c.r.store.Stats().BlobBytes }

// Check evicts when the store is past its high watermark or the disk
// below its floor.
func (c *Capacity) Check(ctx context.Context) {
	if t, due := Target(c.opts.Settings(), c.used(), 0, c.freeBytes(), true); due {
		c.evict(ctx, t)
	}
}

func (c *Capacity) evict(ctx context.Context, target int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep, err := c.r.Evict(ctx, target, c.opts.Pinned)
	if err != nil && ctx.Err() == nil {
		c.opts.Logger.Warn("eviction failed", zap.Error(err))
	}
	if c.opts.OnEvict != nil && rep.BlobsEvicted > 0 {
		c.opts.OnEvict(rep.BlobsEvicted)
	}
}

// Reserve makes room for a fill or upload of size bytes, or refuses it
// with errdefs.ErrStoreFull when nothing more can be evicted.
func (c *Capacity) Reserve(ctx context.Context, size int64) error {
	s := c.opts.Settings()
	if !s.Limited() {
		return nil // no cap and no floor: nothing to measure
	}
	t, due := Target(s, c.used(), size, c.freeBytes(), false)
	if !due {
		return nil
	}
	c.evict(ctx, t)
	used := c.used()
	msg := noRoom(s, used, size, c.freeBytes())
	if msg == "" {
		return nil
	}
	c.opts.Logger.Warn("refusing a fill: no room", zap.Int64("size", size), zap.Int64("used", used))
	return errdefs.New(errdefs.ErrStoreFull, "%s", msg)
}

// Run checks capacity every EvictInterval (as it is at each turn; a
// minute when unset) until ctx ends.
func (c *Capacity) Run(ctx context.Context) {
	for {
		every := c.opts.Settings().EvictInterval
		if every <= 0 {
			every = time.Minute
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if c.opts.Settings().Limited() {
			c.Check(ctx)
		}
	}
}
