package node

import (
	"context"
	"sync/atomic"
	"time"

	"berth/cluster"
	"berth/store"

	"go.uber.org/zap"
)

// GET /cluster/members reports, per member, the bytes of this node's blobs
// that the member owns. Finding them means walking every blob of the store
// and ranking its owners, so it never runs on a request: ownedTracker
// computes the figures in one background goroutine (so one computation at
// a time, however many requests come) and the endpoint serves the latest.
//
// A computation runs when it is due and allowed. It is due when the
// membership changed (a join or leave moves owners; the cluster's hook
// kicks the tracker), when the store's totals differ from those read at
// the last start (blobs came or went), or when the figures are
// ownedMaxAge old (a change the totals do not show, such as a blob
// replaced by one of the same size). It is allowed once ownedMinGap, and
// ownedCostFactor times as long as the last computation took, have passed
// since the last start: on a store that changes all the time the walk then
// takes at most 1/(ownedCostFactor+1) of one core, a few milliseconds
// every two seconds on a small store, seconds every minute or so on one of
// half a million blobs. A node that is idle and stable walks its store
// every ownedMaxAge, which bounds how stale the figures can be.
const (
	ownedCheckEvery = 2 * time.Second // the store's totals are compared (two atomic loads)
	ownedMinGap     = 2 * time.Second
	ownedCostFactor = 20
	ownedMaxAge     = 5 * time.Minute
)

// ownedTracker computes per-member owned bytes off the request path.
type ownedTracker struct {
	// walk calls fn for every blob of the store; tests wrap it to count.
	walk   func(ctx context.Context, fn func(digest string, size int64) error) error
	owners func(digest string) []string // the names of the digest's owners
	stats  func() store.Stats
	now    func() time.Time
	log    *zap.Logger
	kick   chan struct{} // capacity 1: membership changed
	last   atomic.Pointer[cluster.Owned]
}

// ownedState is what Run remembers of the last computation.
type ownedState struct {
	start   time.Time     // when it began; zero before the first
	took    time.Duration // how long it ran
	stats   store.Stats   // the store's totals at its start
	pending bool          // the membership changed since, or it failed
}

func newOwnedTracker(st *store.Store, owners func(digest string) []string, log *zap.Logger) *ownedTracker {
	return &ownedTracker{
		walk: func(ctx context.Context, fn func(digest string, size int64) error) error {
			return st.Sweep().Blobs(ctx, func(digest string, size int64, _ time.Time) error { return fn(digest, size) })
		},
		owners: owners, stats: st.Stats, now: time.Now, log: log, kick: make(chan struct{}, 1),
	}
}

// Changed tells the tracker that owners may have moved. It never blocks:
// kicks while one is pending are one kick.
func (t *ownedTracker) Changed() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Figures returns the latest figures; the zero Owned before the first
// computation finished.
func (t *ownedTracker) Figures() cluster.Owned {
	if o := t.last.Load(); o != nil {
		return *o
	}
	return cluster.Owned{}
}

// Run computes the figures at once, then whenever they are due and
// allowed (see ownedCheckEvery), until ctx ends.
func (t *ownedTracker) Run(ctx context.Context) {
	var s ownedState
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := t.wait(&s)
		if wait == 0 {
			t.compute(ctx, &s)
			wait = ownedCheckEvery
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
			s.pending = true
		case <-timer.C:
		}
	}
}

// wait is how long until the next computation: 0 for now, the rest of
// the gap when one is due but not yet allowed, ownedCheckEvery when none
// is due.
func (t *ownedTracker) wait(s *ownedState) time.Duration {
	now := t.now()
	due := s.start.IsZero() || s.pending || t.stats() != s.stats || now.Sub(s.start) >= ownedMaxAge
	if !due {
		return ownedCheckEvery
	}
	gap := max(ownedMinGap, ownedCostFactor*s.took)
	if rest := s.start.Add(gap).Sub(now); !s.start.IsZero() && rest > 0 {
		return rest
	}
	return 0
}

// compute walks the store once and publishes the figures, dated when the
// walk began. A failed walk keeps the figures there were and is retried.
func (t *ownedTracker) compute(ctx context.Context, s *ownedState) {
	s.start, s.stats, s.pending = t.now(), t.stats(), false
	bytes := map[string]int64{}
	err := t.walk(ctx, func(digest string, size int64) error {
		for _, name := range t.owners(digest) {
			bytes[name] += size
		}
		return nil
	})
	s.took = t.now().Sub(s.start)
	if err != nil {
		s.pending = true
		if ctx.Err() == nil {
			t.log.Warn("computing the members' owned bytes", zap.Error(err))
		}
		return
	}
	t.last.Store(&cluster.Owned{Bytes: bytes, AsOf: s.start})
}
