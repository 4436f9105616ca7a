// Package recompute runs a computation too costly for a request (a walk
// of the whole store) in the background: one goroutine, so one
// computation at a time however many readers there are, started when the
// result is due and the schedule allows it. Readers serve the latest
// result, which the computation publishes itself.
package recompute

import (
	"context"
	"sync/atomic"
	"time"
)

// Schedule is when a Loop computes. A computation is due when none has
// finished yet, when Kick was called or the last one failed, when the
// Loop's stale function says so (asked every CheckEvery), or when the last
// one started MaxAge ago. It is allowed once MinGap, and CostFactor times
// as long as the last computation took, have passed since the last start:
// on data that changes all the time the computation then takes at most
// 1/(CostFactor+1) of one core.
type Schedule struct {
	CheckEvery time.Duration
	MinGap     time.Duration
	CostFactor int
	MaxAge     time.Duration
}

// Loop runs one computation on a Schedule; see Run.
type Loop struct {
	sched   Schedule
	now     func() time.Time
	stale   func() bool
	compute func(ctx context.Context) error
	kick    chan struct{} // capacity 1
}

// New returns a Loop that runs compute on sched. stale, when not nil,
// reports whether the data changed since compute last started (compute
// notes what it started from); now is the clock.
func New(sched Schedule, now func() time.Time, stale func() bool, compute func(ctx context.Context) error) *Loop {
	if now == nil {
		now = time.Now
	}
	if stale == nil {
		stale = func() bool { return false }
	}
	return &Loop{sched: sched, now: now, stale: stale, compute: compute, kick: make(chan struct{}, 1)}
}

// Kick makes a computation due. It never blocks: kicks while one is
// pending are one kick.
func (l *Loop) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// state is what Run remembers of the last computation.
type state struct {
	start   time.Time     // when it began; zero before the first
	took    time.Duration // how long it ran
	pending bool          // kicked since, or it failed
}

// Run computes at once, then whenever a computation is due and allowed,
// until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	var s state
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := l.wait(&s)
		if wait == 0 {
			s.start, s.pending = l.now(), false
			if err := l.compute(ctx); err != nil {
				s.pending = true
			}
			s.took = l.now().Sub(s.start)
			wait = l.sched.CheckEvery
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
			s.pending = true
		case <-timer.C:
		}
	}
}

// wait is how long until the next computation: 0 for now, the rest of the
// gap when one is due but not yet allowed, CheckEvery when none is due.
func (l *Loop) wait(s *state) time.Duration {
	now := l.now()
	due := s.start.IsZero() || s.pending || now.Sub(s.start) >= l.sched.MaxAge || l.stale()
	if !due {
		return l.sched.CheckEvery
	}
	gap := max(l.sched.MinGap, time.Duration(l.sched.CostFactor)*s.took)
	if rest := s.start.Add(gap).Sub(now); !s.start.IsZero() && rest > 0 {
		return rest
	}
	return 0
}

// Since is a Loop's stale function for a result computed from data with a
// cheap summary (a store's totals): Changed reports whether the summary
// differs from the one Mark read when the last computation began.
type Since[S comparable] struct {
	read func() S
	at   atomic.Pointer[S]
}

// NewSince watches the summary read returns.
func NewSince[S comparable](read func() S) *Since[S] { return &Since[S]{read: read} }

// Mark notes the summary; a computation calls it as it begins.
func (w *Since[S]) Mark() {
	v := w.read()
	w.at.Store(&v)
}

// Changed reports whether the summary changed since Mark, or Mark was
// never called.
func (w *Since[S]) Changed() bool {
	p := w.at.Load()
	return p == nil || *p != w.read()
}
