package admin

import (
	"context"
	"sync"
	"time"

	"berth/reclaim"
)

// A garbage collection walks the whole store, so start-gc requests share
// them: the requests that come while one runs all wait for the next one,
// which starts when it ends (so each request's collection begins after
// the request came); however many requests come, at most one collection
// runs and one waits, per grace period asked. A collection runs to its
// end even when its requests gave up waiting.

// gcCall is one collection and what the requests sharing it get.
type gcCall struct {
	grace time.Duration
	done  chan struct{} // closed when rep, took and err are set
	rep   reclaim.GCReport
	took  time.Duration
	err   error
}

// gcFlights are the collections start-gc runs.
type gcFlights struct {
	mu      sync.Mutex
	pending map[time.Duration]*gcCall // not started yet, by grace
	// run holds a token while a collection runs (a channel rather than a
	// mutex, so a collection waiting its turn is blocked durably, as
	// testing/synctest tells).
	run chan struct{}
}

// sharedGC waits for a collection with grace that starts after this call:
// the one waiting to start, or a new one.
func (s *Service) sharedGC(ctx context.Context, grace time.Duration) (*gcCall, error) {
	f := &s.gc
	f.mu.Lock()
	if s.base.Err() != nil {
		f.mu.Unlock()
		return nil, &Error{Status: 503, Code: CodeServer, Message: "the node is shutting down"}
	}
	c := f.pending[grace]
	if c == nil {
		c = &gcCall{grace: grace, done: make(chan struct{})}
		f.pending[grace] = c
		s.wg.Add(1)
		go s.runGC(c)
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		return c, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runGC runs c once the collection before it ended; from its start, new
// requests wait for the next one.
func (s *Service) runGC(c *gcCall) {
	defer s.wg.Done()
	f := &s.gc
	f.run <- struct{}{}
	defer func() { <-f.run }()
	f.mu.Lock()
	delete(f.pending, c.grace)
	f.mu.Unlock()
	start := time.Now()
	c.rep, c.err = s.o.Reclaim.GC(s.base, c.grace)
	c.took = time.Since(start)
	close(c.done)
}
