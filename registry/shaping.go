package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// shapeChunk is the most a blob body writes between two waits for its
// client's bandwidth.
const shapeChunk = 16 << 10

// ShapeLimits are the per-client caps on blob bodies: bytes per second
// (0: none) and concurrent blob streams (0: none).
type ShapeLimits struct {
	BytesPerSecond int64
	MaxStreams     int
}

// Shaper paces the blob bodies each client (ClientKey: a user, an
// anonymous address, or a cluster peer's address) receives, and holds a
// client's blob streams beyond its cap until one of its others ends. It
// never refuses: a client over a cap waits. The caps are read at each
// stream's start, so a reload applies to the next streams.
type Shaper struct {
	limits func() ShapeLimits

	mu      sync.Mutex
	clients map[string]*shapedClient

	waited atomic.Int64 // nanoseconds streams waited, for a cap or a slot
}

type shapedClient struct {
	lim     *rate.Limiter
	streams int
	waiting int           // streams waiting for a slot
	wake    chan struct{} // closed when a stream ends; nil when nobody waits
}

// NewShaper returns a shaper whose caps limits gives.
func NewShaper(limits func() ShapeLimits) *Shaper {
	return &Shaper{limits: limits, clients: map[string]*shapedClient{}}
}

// WithShaper paces blob bodies by s.
func WithShaper(s *Shaper) Option { return func(srv *Server) { srv.shaper = s } }

// Throttled is the time blob streams waited for a client's bandwidth or a
// free stream slot.
func (s *Shaper) Throttled() time.Duration { return time.Duration(s.waited.Load()) }

// start waits for a free stream slot of client key and returns the pacing
// of its body (nil: none) and the release of the slot. It fails only when
// ctx ends.
func (s *Shaper) start(ctx context.Context, key string) (pace func(n int) error, release func(), err error) {
	lim := s.limits()
	s.mu.Lock()
	c := s.clients[key]
	if c == nil {
		c = &shapedClient{lim: rate.NewLimiter(rate.Inf, shapeChunk)}
		s.clients[key] = c
	}
	for lim.MaxStreams > 0 && c.streams >= lim.MaxStreams {
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		wake := c.wake
		c.waiting++
		s.mu.Unlock()
		began := time.Now()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		s.waited.Add(int64(time.Since(began)))
		s.mu.Lock()
		c.waiting--
		if err := ctx.Err(); err != nil {
			s.endLocked(key, c)
			s.mu.Unlock()
			return nil, nil, err
		}
	}
	c.streams++
	if lim.BytesPerSecond > 0 {
		c.lim.SetLimit(rate.Limit(lim.BytesPerSecond))
		pace = func(n int) error {
			t := time.Now()
			err := c.lim.WaitN(ctx, n)
			s.waited.Add(int64(time.Since(t)))
			return err
		}
	} else {
		c.lim.SetLimit(rate.Inf)
	}
	s.mu.Unlock()
	var once sync.Once
	return pace, func() {
		once.Do(func() {
			s.mu.Lock()
			c.streams--
			s.endLocked(key, c)
			s.mu.Unlock()
		})
	}, nil
}

// endLocked wakes the client's waiters and forgets an idle client.
func (s *Shaper) endLocked(key string, c *shapedClient) {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
	if c.streams == 0 && c.waiting == 0 {
		delete(s.clients, key)
	}
}

// Limits are the caps in force now.
func (s *Shaper) Limits() ShapeLimits { return s.limits() }
