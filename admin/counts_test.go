package admin

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"berth/store"
)

// statsStore is a Store whose totals the test sets; the counter reads
// nothing else of it here (its walk is replaced).
type statsStore struct {
	Store
	blobs atomic.Int64
}

func (s *statsStore) Stats() store.Stats { return store.Stats{Blobs: s.blobs.Load()} }

// describe-cache's counts are recomputed in the background at the start,
// after an admin call changed the store, when the store's totals moved
// and when a minute old; never while nothing is due, and never by a
// request.
func TestStoreCountsRecomputeWhenDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &statsStore{}
		s := New(Options{Store: st})
		var walks atomic.Int64
		s.counts.walk = func(context.Context) (*storeCounts, error) {
			walks.Add(1)
			return &storeCounts{local: RepositoryStats{Repositories: int(walks.Load())}}, nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx) }()
		step := func(what string, d time.Duration, want int64) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := walks.Load(); got != want {
				t.Fatalf("%s: %d walks, want %d", what, got, want)
			}
		}
		step("at start", 0, 1)
		for range 100 {
			if _, err := s.describeCache(ctx, &DescribeCacheRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		step("100 requests, nothing due", 30*time.Second, 1)
		s.storeChanged()
		step("an admin call changed the store", 0, 2)
		st.blobs.Add(1)
		step("the store's totals moved", 2*time.Second, 3)
		step("a minute old", time.Minute, 4)
		got, err := s.describeCache(ctx, &DescribeCacheRequest{})
		if err != nil || got.Local.Repositories != 4 || got.CountsAsOf == nil {
			t.Fatalf("describe-cache serves %+v, %v; want the last walk's counts", got, err)
		}
		cancel()
		<-done
	})
}
