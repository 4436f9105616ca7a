package node

import (
	"context"
	"sync/atomic"
	"time"

	"berth/cluster"
	"berth/internal/recompute"
	"berth/store"

	"go.uber.org/zap"
)

// GET /cluster/members reports, per member, the bytes of this node's blobs
// that the member owns. Finding them means walking every blob of the store
// and ranking its owners, so it never runs on a request: ownedTracker
// computes the figures in one background goroutine (so one computation at
// a time, however many requests come) and the endpoint serves the latest.
//
// The figures are recomputed on recompute's schedule (ownedSchedule): when
// the membership changed (a join or leave moves owners; the cluster's
// hook kicks the tracker), when the store's totals differ from those read
// at the last start (blobs came or went; compared every 2 s, two atomic
// loads), or when they are 5 minutes old (a change the totals do not
// show, such as a blob replaced by one of the same size); no sooner than
// 2 s, and 20 times as long as the last walk took, after the last start.
// On a store that changes all the time the walk then takes at most 1/21
// of one core, a few milliseconds every two seconds on a small store,
// seconds every minute or so on one of half a million blobs.
var ownedSchedule = recompute.Schedule{CheckEvery: 2 * time.Second, MinGap: 2 * time.Second, CostFactor: 20, MaxAge: 5 * time.Minute}

// ownedTracker computes per-member owned bytes off the request path.
type ownedTracker struct {
	// walk calls fn for every blob of the store; tests wrap it to count.
	walk   func(ctx context.Context, fn func(digest string, size int64) error) error
	owners func(digest string) []string // the names of the digest's owners
	now    func() time.Time
	log    *zap.Logger
	loop   *recompute.Loop
	last   atomic.Pointer[cluster.Owned]
	// totals are the store's totals as the last walk began.
	totals *recompute.Since[store.Stats]
}

func newOwnedTracker(st *store.Store, owners func(digest string) []string, log *zap.Logger) *ownedTracker {
	t := &ownedTracker{
		walk: func(ctx context.Context, fn func(digest string, size int64) error) error {
			return st.Sweep().Blobs(ctx, func(digest string, size int64, _ time.Time) error { return fn(digest, size) })
		},
		owners: owners, now: time.Now, log: log, totals: recompute.NewSince(st.Stats),
	}
	t.loop = recompute.New(ownedSchedule, func() time.Time { return t.now() }, t.totals.Changed, t.compute)
	return t
}

// Changed tells the tracker that owners may have moved. It never blocks.
func (t *ownedTracker) Changed() { t.loop.Kick() }

// Figures returns the latest figures; the zero Owned before the first
// computation finished.
func (t *ownedTracker) Figures() cluster.Owned {
	if o := t.last.Load(); o != nil {
		return *o
	}
	return cluster.Owned{}
}

// Run computes the figures at once, then whenever ownedSchedule says,
// until ctx ends.
func (t *ownedTracker) Run(ctx context.Context) { t.loop.Run(ctx) }

// compute walks the store once and publishes the figures, dated when the
// walk began. A failed walk keeps the figures there were and is retried.
func (t *ownedTracker) compute(ctx context.Context) error {
	start := t.now()
	t.totals.Mark()
	bytes := map[string]int64{}
	err := t.walk(ctx, func(digest string, size int64) error {
		for _, name := range t.owners(digest) {
			bytes[name] += size
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("computing the members' owned bytes", zap.Error(err))
		}
		return err
	}
	t.last.Store(&cluster.Owned{Bytes: bytes, AsOf: start})
	return nil
}
