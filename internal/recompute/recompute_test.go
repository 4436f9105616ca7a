package recompute

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var sched = Schedule{CheckEvery: 2 * time.Second, MinGap: 2 * time.Second, CostFactor: 20, MaxAge: 5 * time.Minute}

// The loop computes at once; then on a kick (many kicks are one), no
// sooner than the gap after the last start; when stale; when the result
// is MaxAge old; never while nothing is due; and a slow computation
// spaces the next by CostFactor times its duration.
func TestLoopComputesWhenDueAndAllowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		var stale atomic.Bool
		var cost atomic.Int64 // how long a computation takes
		l := New(sched, nil, stale.Load, func(ctx context.Context) error {
			runs.Add(1)
			stale.Store(false)
			time.Sleep(time.Duration(cost.Load()))
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		step := func(what string, d time.Duration, want int64) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := runs.Load(); got != want {
				t.Fatalf("%s: %d computations, want %d", what, got, want)
			}
		}
		step("at start", 0, 1)
		step("nothing due", time.Minute, 1)
		for range 10 {
			l.Kick()
		}
		step("ten kicks", 0, 2)
		l.Kick()
		step("a kick within the gap", sched.MinGap/2, 2)
		step("the gap has passed", sched.MinGap/2, 3)
		stale.Store(true)
		step("stale, seen at the next check", sched.CheckEvery, 4)
		step("the result grew old", sched.MaxAge-sched.CheckEvery, 4)
		step("the result grew old", sched.CheckEvery, 5)
		cost.Store(int64(time.Second))
		l.Kick()
		step("a slow computation", sched.MinGap, 6)
		l.Kick()
		step("kicked within 20 times its cost", 20*time.Second-time.Millisecond, 6)
		step("kicked, 20 times its cost passed", time.Millisecond, 7)
		cancel()
		<-done
	})
}

// A failed computation is due again once allowed.
func TestLoopRetriesAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		l := New(sched, nil, nil, func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				return errors.New("disk on fire")
			}
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		time.Sleep(sched.MinGap)
		synctest.Wait()
		if got := runs.Load(); got != 2 {
			t.Fatalf("%d computations after a failure and the gap, want 2", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := runs.Load(); got != 2 {
			t.Fatalf("%d computations once one succeeded and nothing changed, want 2", got)
		}
		cancel()
		<-done
	})
}

// Since is changed before the first Mark and whenever the summary moved
// after the last.
func TestSince(t *testing.T) {
	var v atomic.Int64
	w := NewSince(v.Load)
	if !w.Changed() {
		t.Fatal("not changed before the first Mark")
	}
	w.Mark()
	if w.Changed() {
		t.Fatal("changed right after Mark")
	}
	v.Add(1)
	if !w.Changed() {
		t.Fatal("not changed after the summary moved")
	}
	w.Mark()
	if w.Changed() {
		t.Fatal("changed after Mark noted the new summary")
	}
}
