package admin

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"berth/reclaim"
	"berth/store"
)

// blockingReclaim counts collections; each waits until release is closed.
type blockingReclaim struct {
	Reclaim
	calls   atomic.Int64
	release chan struct{}
}

func (r *blockingReclaim) GC(ctx context.Context, grace time.Duration) (reclaim.GCReport, error) {
	n := r.calls.Add(1)
	select {
	case <-r.release:
	case <-ctx.Done():
		return reclaim.GCReport{}, ctx.Err()
	}
	return reclaim.GCReport{BlobsDeleted: int(n)}, nil
}

// start-gc requests share collections: twenty requests while one runs
// make one more collection, not twenty, and each request gets one that
// began after it came.
func TestStartGCRequestsShareCollections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &blockingReclaim{release: make(chan struct{})}
		s := New(Options{Store: &statsStore{}, Reclaim: rc})
		defer s.Close()
		var wg sync.WaitGroup
		got := make([]int, 21)
		gc := func(i int) {
			defer wg.Done()
			resp, err := s.startGC(t.Context(), &StartGCRequest{GracePeriod: "1h"})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			got[i] = resp.BlobsDeleted
		}
		wg.Add(1)
		go gc(0)
		synctest.Wait()
		if n := rc.calls.Load(); n != 1 {
			t.Fatalf("one request: %d collections", n)
		}
		for i := 1; i <= 20; i++ {
			wg.Add(1)
			go gc(i)
		}
		synctest.Wait()
		if n := rc.calls.Load(); n != 1 {
			t.Fatalf("twenty more while it runs: %d collections started, want the one running", n)
		}
		close(rc.release)
		wg.Wait()
		if n := rc.calls.Load(); n != 2 {
			t.Fatalf("%d collections for 21 requests, want 2", n)
		}
		for i, g := range got {
			if want := min(i+1, 2); g != want {
				t.Errorf("request %d got collection %d, want %d", i, g, want)
			}
		}
		// Another grace is another collection; a request after the others
		// ended gets a new one.
		for _, grace := range []string{"0s", "1h"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.startGC(t.Context(), &StartGCRequest{GracePeriod: grace}); err != nil {
					t.Error(err)
				}
			}()
			wg.Wait()
		}
		if n := rc.calls.Load(); n != 4 {
			t.Fatalf("%d collections, want 4", n)
		}
	})
}

// policyStore counts the reads of the lifecycle policies, which start a
// lifecycle run; each waits until release is closed, and finds none.
type policyStore struct {
	statsStore
	reads   atomic.Int64
	release chan struct{}
}

func (p *policyStore) ListPolicies(ctx context.Context, kind string) ([]store.PolicyEntry, error) {
	p.reads.Add(1)
	select {
	case <-p.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run-lifecycle requests share runs as start-gc's do, by scope.
func TestRunLifecycleRequestsShareRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &policyStore{release: make(chan struct{})}
		s := New(Options{Store: st})
		defer s.Close()
		var wg sync.WaitGroup
		run := func(scope string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.runLifecycle(t.Context(), &RunLifecycleRequest{RepositoryName: scope}); err != nil {
					t.Error(err)
				}
			}()
		}
		run("")
		synctest.Wait()
		for range 20 {
			run("")
		}
		run("private/*")
		synctest.Wait()
		if n := st.reads.Load(); n != 1 {
			t.Fatalf("22 requests while one runs: %d runs started, want the one running", n)
		}
		close(st.release)
		wg.Wait()
		if n := st.reads.Load(); n != 3 {
			t.Fatalf("%d runs for 21 requests over everything and one for private/*, want 3", n)
		}
	})
}
