package registry

import (
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a per-client token bucket. Idle buckets are dropped. Blob
// requests of a pull whose manifest was admitted, and the chunks of an
// upload whose session was admitted, are let through even when the bucket
// is empty, so a pull or push that started is not starved half way.
type Limiter struct {
	rps   rate.Limit
	burst int
	idle  time.Duration
	grace time.Duration

	mu        sync.Mutex
	clients   map[string]*clientBucket
	lastSweep time.Time
}

type clientBucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
	// pulls maps a repository to when its last manifest was admitted.
	pulls map[Repo]time.Time
}

// NewLimiter returns a limiter allowing rps requests per second with the
// given burst per client.
func NewLimiter(rps float64, burst int) *Limiter {
	return &Limiter{
		rps: rate.Limit(rps), burst: burst,
		idle: 10 * time.Minute, grace: 10 * time.Minute,
		clients: map[string]*clientBucket{},
	}
}

// Admit takes a token for client or returns a 429 TOOMANYREQUESTS error with
// the time after which a retry will succeed.
func (l *Limiter) Admit(client string, rt Route, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	c := l.clients[client]
	if c == nil {
		c = &clientBucket{lim: rate.NewLimiter(l.rps, l.burst)}
		l.clients[client] = c
	}
	c.lastSeen = now
	// Blob bytes and the chunks of an open upload belong to a pull or push
	// that was admitted when it asked for its manifest or opened its upload.
	if rt.Kind == KindBlob || rt.Kind == KindBlobUpload && rt.UploadID != "" {
		if t, ok := c.pulls[rt.Repo]; ok && now.Sub(t) < l.grace {
			// Part of an admitted pull: take a token if there is one,
			// never refuse.
			c.lim.AllowN(now, 1)
			return nil
		}
	}
	r := c.lim.ReserveN(now, 1)
	if !r.OK() {
		return tooMany(time.Second)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return tooMany(d)
	}
	if rt.Kind == KindManifest || rt.Kind == KindBlobUpload {
		if c.pulls == nil {
			c.pulls = map[Repo]time.Time{}
		}
		c.pulls[rt.Repo] = now
	}
	return nil
}

func tooMany(d time.Duration) error {
	secs := math.Ceil(d.Seconds())
	if secs < 1 {
		secs = 1
	}
	e := Errorf(http.StatusTooManyRequests, CodeTooManyRequests, "too many requests from this client; retry after %.0f s", secs)
	e.RetryAfter = time.Duration(secs) * time.Second
	return e
}

// sweep drops buckets idle for longer than l.idle; it runs at most once a
// minute. Callers hold l.mu.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for k, c := range l.clients {
		if now.Sub(c.lastSeen) > l.idle {
			delete(l.clients, k)
			continue
		}
		for repo, t := range c.pulls {
			if now.Sub(t) > l.grace {
				delete(c.pulls, repo)
			}
		}
	}
}

// Clients returns how many buckets are held, for tests and metrics.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
