package admin

import (
	"context"
	"sync/atomic"
	"time"

	"berth/internal/recompute"
	"berth/store"

	"go.uber.org/zap"
)

// describe-cache counts the repositories and images of the store, local
// and per upstream: a pass over every image record, so it never runs on a
// request. storeCounter computes the counts in one background goroutine
// (Service.Run) and describe-cache serves the latest, with countsAsOf.
//
// countsSchedule: the counts are recomputed when the store's blob totals
// differ from those read at the last start (compared every 2 s), when an
// admin call created or deleted a repository or an image, and at least
// every minute (images a push or a pull added without a new blob); no
// sooner than 2 s, and 20 times as long as the last pass took, after the
// last start.
var countsSchedule = recompute.Schedule{CheckEvery: 2 * time.Second, MinGap: 2 * time.Second, CostFactor: 20, MaxAge: time.Minute}

// storeCounts are what one pass counted.
type storeCounts struct {
	asOf  time.Time
	local RepositoryStats
	// cached are the cached repositories and images by upstream rule name.
	cached map[string]RepositoryStats
}

// storeCounter computes storeCounts off the request path.
type storeCounter struct {
	// walk counts the store once; tests wrap it to count the walks.
	walk func(ctx context.Context) (*storeCounts, error)
	now  func() time.Time
	log  *zap.Logger
	loop *recompute.Loop
	last atomic.Pointer[storeCounts]
	// totals are the store's totals as the last pass began.
	totals *recompute.Since[store.Stats]
}

func newStoreCounter(s *Service) *storeCounter {
	c := &storeCounter{walk: s.countStore, now: s.o.Now, log: s.log, totals: recompute.NewSince(s.o.Store.Stats)}
	c.loop = recompute.New(countsSchedule, func() time.Time { return c.now() }, c.totals.Changed, c.count)
	return c
}

// count walks the store once and publishes the counts, dated when the
// walk began. A failed walk keeps the counts there were.
func (c *storeCounter) count(ctx context.Context) error {
	start := c.now()
	c.totals.Mark()
	got, err := c.walk(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("counting the store's repositories and images", zap.Error(err))
		}
		return err
	}
	got.asOf = start.UTC()
	c.last.Store(got)
	return nil
}

// countStore reads every local repository name and image record.
func (s *Service) countStore(ctx context.Context) (*storeCounts, error) {
	names, err := s.o.Store.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := s.o.Reclaim.StoreRepositories(ctx)
	if err != nil {
		return nil, err
	}
	out := &storeCounts{local: RepositoryStats{Repositories: len(names)}, cached: map[string]RepositoryStats{}}
	for _, r := range stored {
		if !r.Cached() {
			out.local.Images += r.Images
			continue
		}
		u := out.cached[r.Key.Upstream]
		u.Repositories++
		u.Images += r.Images
		out.cached[r.Key.Upstream] = u
	}
	return out, nil
}

// Run counts the store's repositories and images for describe-cache at
// once, then whenever countsSchedule says, until ctx ends.
func (s *Service) Run(ctx context.Context) { s.counts.loop.Run(ctx) }

// CountStore counts the store's repositories and images now, as Run does
// on its schedule: what describe-cache serves from then on.
func (s *Service) CountStore(ctx context.Context) error { return s.counts.count(ctx) }

// storeChanged tells the counter that an admin call added or removed a
// repository or an image. It never blocks.
func (s *Service) storeChanged() { s.counts.loop.Kick() }
