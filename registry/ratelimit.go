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

	// rates, when set, gives a key its own rate and burst (ok false: the
	// default).
	rates   func(key string) (rps float64, burst int, ok bool)
	onLimit func(key string)

	mu        sync.Mutex
	clients   map[string]*clientBucket
	lastSweep time.Time
}

type clientBucket struct {
	lim      *rate.Limiter
	rps      rate.Limit // the bucket's settings, compared on SetRates
	burst    int
	lastSeen time.Time
	limited  bool // refused since it was last admitted
	held     int  // tokens set aside by Hold
	// pulls maps a repository to when its last manifest was admitted.
	pulls map[Repo]time.Time
}

// NewLimiter returns a limiter allowing rps requests per second with the
// given burst per client.
func NewLimiter(rps float64, burst int) *Limiter {
	return &Limiter{
		rps: limitOf(rps), burst: burst,
		idle: 10 * time.Minute, grace: 10 * time.Minute,
		clients: map[string]*clientBucket{},
	}
}

// limitOf is rps as a rate.Limit: +Inf (rate limiting off) is rate.Inf,
// which the token bucket treats as no limit at all.
func limitOf(rps float64) rate.Limit {
	if math.IsInf(rps, 1) {
		return rate.Inf
	}
	return rate.Limit(rps)
}

// WithRates gives some keys ("user:<name>", "ip:<addr>") their own rate
// and burst; the others keep the limiter's.
func (l *Limiter) WithRates(f func(key string) (rps float64, burst int, ok bool)) *Limiter {
	l.rates = f
	return l
}

// SetRates replaces the default rate and burst and the per-key function (a
// config reload). Buckets survive it with the tokens they hold: a client
// whose limits did not change sees no difference, and one whose limits did
// keeps its tokens under the new rate and burst.
func (l *Limiter) SetRates(now time.Time, rps float64, burst int, perKey func(key string) (rps float64, burst int, ok bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rps, l.burst, l.rates = limitOf(rps), burst, perKey
	for key, c := range l.clients {
		r, b := l.settingsFor(key)
		if r != c.rps {
			c.lim.SetLimitAt(now, r)
			c.rps = r
		}
		if b != c.burst {
			c.lim.SetBurstAt(now, b)
			c.burst = b
		}
	}
}

// settingsFor is key's rate and burst. Callers hold l.mu.
func (l *Limiter) settingsFor(key string) (rate.Limit, int) {
	if l.rates != nil {
		if r, b, ok := l.rates(key); ok {
			return limitOf(r), b
		}
	}
	return l.rps, l.burst
}

// Admit takes a token for client or returns a 429 TOOMANYREQUESTS error with
// the time after which a retry will succeed.
func (l *Limiter) Admit(client string, rt Route, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.bucket(client, now)
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
	if err := l.take(client, c, now); err != nil {
		return err
	}
	if (rt.Kind == KindManifest || rt.Kind == KindBlobUpload) && c.rps != rate.Inf {
		l.notePull(c, rt.Repo, now)
	}
	return nil
}

// maxPulls bounds the pulls and pushes one client has admitted within the
// grace period that the limiter remembers: far more repositories than a
// client pulls at once, and few enough that a client naming a new
// repository in every request holds a bounded amount of memory.
const maxPulls = 1024

// notePull remembers that c's pull or push of repo was admitted now. A
// client at maxPulls forgets those past the grace period, then its oldest
// one. A bucket without a limit remembers nothing: nothing of it is ever
// refused. Callers hold l.mu.
func (l *Limiter) notePull(c *clientBucket, repo Repo, now time.Time) {
	if c.pulls == nil {
		c.pulls = map[Repo]time.Time{}
	}
	if _, ok := c.pulls[repo]; !ok && len(c.pulls) >= maxPulls {
		var oldest Repo
		var oldestAt time.Time
		for r, t := range c.pulls {
			if now.Sub(t) > l.grace {
				delete(c.pulls, r)
			} else if oldestAt.IsZero() || t.Before(oldestAt) {
				oldest, oldestAt = r, t
			}
		}
		if len(c.pulls) >= maxPulls {
			delete(c.pulls, oldest)
		}
	}
	c.pulls[repo] = now
}

// Hold sets a token of client's bucket aside for work that is charged
// only if it fails (a credential check), or refuses like Admit when the
// bucket has no token that is not set aside already. done ends the hold:
// a failure takes the token, a success leaves it.
func (l *Limiter) Hold(client string, now time.Time) (done func(now time.Time, failed bool), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.bucket(client, now)
	if avail := c.lim.TokensAt(now) - float64(c.held); avail < 1 {
		wait := time.Second
		if c.rps > 0 {
			wait = time.Duration((1 - avail) / float64(c.rps) * float64(time.Second))
		}
		return nil, l.refuse(client, c, wait)
	}
	c.limited = false
	c.held++
	return func(at time.Time, failed bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		c.held--
		if failed {
			c.lim.AllowN(at, 1)
		}
	}, nil
}

// bucket is client's bucket, made on first use. Callers hold l.mu.
func (l *Limiter) bucket(client string, now time.Time) *clientBucket {
	l.sweep(now)
	c := l.clients[client]
	if c == nil {
		if len(l.clients) >= maxClients {
			l.dropOne()
		}
		rps, burst := l.settingsFor(client)
		c = &clientBucket{lim: rate.NewLimiter(rps, burst), rps: rps, burst: burst}
		l.clients[client] = c
	}
	c.lastSeen = now
	return c
}

// maxClients bounds the buckets a limiter keeps: far more clients than
// send requests within the idle period, and few enough that clients with
// endless addresses (an IPv6 prefix), or endless user names for the
// failed-login buckets, hold a bounded amount of memory (about 300 bytes
// a bucket).
const maxClients = 1 << 16

// dropOne makes room for a new bucket by dropping one the map's iteration
// picks at random. A dropped bucket only ever errs on the lenient side:
// its client starts again with a full bucket. Callers hold l.mu.
func (l *Limiter) dropOne() {
	for k := range l.clients {
		delete(l.clients, k)
		return
	}
}

// take takes a token from c now, or refuses. Callers hold l.mu.
func (l *Limiter) take(client string, c *clientBucket, now time.Time) error {
	r := c.lim.ReserveN(now, 1)
	if !r.OK() {
		return l.refuse(client, c, time.Second)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return l.refuse(client, c, d)
	}
	c.limited = false
	return nil
}

// refuse reports the first refusal of a run to onLimit, then refuses.
// Callers hold l.mu.
func (l *Limiter) refuse(client string, c *clientBucket, d time.Duration) error {
	if !c.limited {
		c.limited = true
		if l.onLimit != nil {
			l.onLimit(client)
		}
	}
	return tooMany(d)
}

// OnLimit sets a function told when a client starts being refused (once
// per run of refusals, so logs are not flooded).
func (l *Limiter) OnLimit(f func(key string)) *Limiter {
	l.onLimit = f
	return l
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
