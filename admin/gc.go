package admin

import (
	"context"
	"sync"
	"time"

	"berth/reclaim"
)

// A garbage collection, and a lifecycle run, walk the whole store, so the
// requests that ask for one share them: the requests that come while one
// runs all wait for the next one, which starts when it ends (so each
// request's run begins after the request came); however many requests
// come, one runs at a time and one waits per kind of run (grace period,
// scope). A run goes on to its end when its requests gave up waiting.

// flight is one run and what the requests sharing it get.
type flight[T any] struct {
	done chan struct{} // closed when val and err are set
	val  T
	err  error
}

// flights are the runs of one operation, by kind.
type flights[K comparable, T any] struct {
	mu      sync.Mutex
	pending map[K]*flight[T] // not started yet
	// run holds a token while a run runs (a channel rather than a mutex,
	// so a run waiting its turn is blocked durably, as testing/synctest
	// tells).
	run chan struct{}
}

func newFlights[K comparable, T any]() *flights[K, T] {
	return &flights[K, T]{pending: map[K]*flight[T]{}, run: make(chan struct{}, 1)}
}

// share waits for a run of kind k that starts after this call, the one
// waiting to start or a new one, and returns what it returned. fn runs
// under the Service's base context, tracked by its wait group.
func share[K comparable, T any](s *Service, f *flights[K, T], ctx context.Context, k K, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	f.mu.Lock()
	if s.base.Err() != nil {
		f.mu.Unlock()
		return zero, &Error{Status: 503, Code: CodeServer, Message: "the node is shutting down"}
	}
	c := f.pending[k]
	if c == nil {
		c = &flight[T]{done: make(chan struct{})}
		f.pending[k] = c
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f.run <- struct{}{}
			defer func() { <-f.run }()
			f.mu.Lock()
			delete(f.pending, k) // from now on, new requests wait for the next
			f.mu.Unlock()
			c.val, c.err = fn(s.base)
			close(c.done)
		}()
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// gcResult is a collection's report and how long it took.
type gcResult struct {
	rep  reclaim.GCReport
	took time.Duration
}

// sharedGC waits for a collection with grace that starts after this call.
func (s *Service) sharedGC(ctx context.Context, grace time.Duration) (gcResult, error) {
	return share(s, s.gc, ctx, grace, func(ctx context.Context) (gcResult, error) {
		start := time.Now()
		rep, err := s.o.Reclaim.GC(ctx, grace)
		return gcResult{rep: rep, took: time.Since(start)}, err
	})
}
