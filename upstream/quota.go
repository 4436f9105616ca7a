package upstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Bounds of a backoff, whatever the upstream says.
const (
	// minBackoff is the shortest backoff, so that a quota reported spent
	// with a reset of 0 does not turn into a request storm.
	minBackoff = 2 * time.Second
	// maxBackoff is the longest backoff: an absurd Retry-After costs at
	// most one request an hour.
	maxBackoff = time.Hour
	// defaultBackoff is the backoff when the upstream does not say how long.
	defaultBackoff = time.Minute
)

// ErrBackoff marks an ErrUnavailable returned without contacting the
// upstream because it asked Berth to slow down (a 429, or RateLimit headers
// reporting its quota spent) and the time it gave has not come yet.
var ErrBackoff = errors.New("upstream is backing off")

// errWouldExceed is a request that would wait for the rate limit past its
// deadline.
var errWouldExceed = errors.New("the upstream's request rate limit would hold the request past its deadline")

// BackoffError is a request refused because the upstream backs off. It is
// ErrBackoff and ErrUnavailable, so cached content is served instead.
type BackoffError struct {
	Upstream string
	// Until is when the upstream may be asked again.
	Until time.Time
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("upstream %s: %v until %s: it answered 429 or reported its quota spent",
		e.Upstream, ErrBackoff, e.Until.UTC().Format(time.RFC3339))
}

// Is makes a BackoffError both ErrBackoff and ErrUnavailable.
func (e *BackoffError) Is(target error) bool { return target == ErrBackoff || target == ErrUnavailable }

// quota is an upstream's token bucket and request counters.
type quota struct {
	lim       *rate.Limiter // nil: no limit
	requests  atomic.Int64
	throttled atomic.Int64
	// remaining is the last RateLimit-Remaining the upstream sent; -1
	// before it sent one.
	remaining atomic.Int64
	// paced is the nanoseconds blob downloads waited for a bandwidth cap.
	paced atomic.Int64
}

func newQuota(r Rule) *quota {
	q := &quota{}
	q.remaining.Store(-1)
	if r.RequestsPerSecond > 0 {
		q.lim = rate.NewLimiter(rate.Limit(r.RequestsPerSecond), max(1, r.Burst))
	}
	return q
}

// wait takes a token from the bucket, reading the time from clock. It
// fails at once with errWouldExceed when the token comes after ctx's
// deadline, and with ctx's error when ctx ends first.
func (q *quota) wait(ctx context.Context, clock func() time.Time) error {
	if q.lim == nil {
		return nil
	}
	now := clock()
	r := q.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) < d {
		r.CancelAt(now)
		return errWouldExceed
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.CancelAt(clock())
		return ctx.Err()
	}
}

// Requests is how many HTTP requests the client sent to the upstream, the
// token dance and redirects included.
func (u *Upstream) Requests() int64 { return u.quota.requests.Load() }

// Throttled is how many requests the client refused itself to spare the
// upstream's quota: while it backed off, or when the request rate limit
// would have held them past their deadline.
func (u *Upstream) Throttled() int64 { return u.quota.throttled.Load() }

// RateLimitRemaining is the last RateLimit-Remaining the upstream sent
// (Docker Hub's pulls left in its window), and false before it sent one.
func (u *Upstream) RateLimitRemaining() (int64, bool) {
	n := u.quota.remaining.Load()
	return n, n >= 0
}

// Backoff reports whether the upstream backs off, so that pulls fail at
// once with ErrBackoff, and until when. With a credential pool, an
// endpoint backs off when every credential does; with several endpoints,
// the upstream backs off when every endpoint does, until the first is free.
func (u *Upstream) Backoff() (until time.Time, ok bool) {
	now := u.now()
	for _, ep := range u.eps {
		t, off := ep.pool.backoff(http.MethodGet, now)
		if !off {
			return time.Time{}, false
		}
		if until.IsZero() || t.Before(until) {
			until = t
		}
	}
	return until, len(u.eps) > 0
}

// throttle counts a request refused because of a backoff until until.
func (u *Upstream) throttle(until time.Time) error {
	u.quota.throttled.Add(1)
	return &BackoffError{Upstream: u.Rule.Name, Until: until}
}

// observe reads what a response from ep to a request made with c says
// about the upstream's quota, and starts or extends a backoff if need be.
func (u *Upstream) observe(ep *endpoint, c *credential, resp *http.Response) {
	if n, _, ok := rateLimitField(resp.Header.Get("RateLimit-Remaining")); ok {
		u.quota.remaining.Store(n)
	}
	now := u.now()
	s, ok := readSignal(resp, now)
	if !ok {
		return
	}
	credStarted, upStarted, until := ep.pool.note(c, s, now)
	log := u.log.With(zap.String("reason", s.reason))
	if len(u.eps) > 1 {
		log = log.With(zapEndpoint(ep))
	}
	if c.user != "" {
		log = log.With(zap.String("credential", c.user))
	}
	if credStarted && !upStarted && ep.pool.size() > 1 {
		log.Warn("upstream credential backing off; the other credentials carry on", zap.Time("until", s.until))
	}
	if upStarted {
		log.Warn("upstream backing off: pulls fail at once until then", zap.Time("until", until))
	}
}

// meter sits under the token dance of one credential: it counts every
// request sent to the upstream and reads what the answers say about the
// quota.
type meter struct {
	u     *Upstream
	ep    *endpoint
	cred  *credential
	inner http.RoundTripper
}

func (o *meter) RoundTrip(r *http.Request) (*http.Response, error) {
	o.u.quota.requests.Add(1)
	o.ep.requests.Add(1)
	resp, err := o.inner.RoundTrip(r)
	if err == nil {
		o.u.observe(o.ep, o.cred, resp)
	}
	return resp, err
}

// signal is what a response says about the upstream's quota.
type signal struct {
	until time.Time
	// hard is a 429: no request until then. Otherwise the quota is spent:
	// only requests that count against it wait.
	hard   bool
	reason string
}

// readSignal reads a 429 (with Retry-After, or else RateLimit headers,
// giving the time to wait) or RateLimit headers reporting the quota spent.
// Docker Hub sends "RateLimit-Remaining: 0;w=21600" (the window in
// seconds); the IETF draft sends "RateLimit-Remaining: 0" with
// "RateLimit-Reset: <seconds>".
func readSignal(resp *http.Response, now time.Time) (signal, bool) {
	spent, reset := rateLimit(resp.Header)
	var s signal
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		s.hard, s.reason = true, "429 Too Many Requests"
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			reset = d
		}
	case spent:
		s.reason = "quota spent (RateLimit-Remaining: 0)"
	default:
		return signal{}, false
	}
	if reset < 0 {
		reset = defaultBackoff
	}
	s.until = now.Add(min(max(reset, minBackoff), maxBackoff))
	return s, true
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return seconds(n), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// rateLimit reports whether RateLimit headers say the quota is spent, and
// in how long it resets (-1: not said): RateLimit-Reset, else the w=
// window of RateLimit-Remaining or RateLimit-Limit.
func rateLimit(h http.Header) (spent bool, reset time.Duration) {
	reset = -1
	remaining, w, ok := rateLimitField(h.Get("RateLimit-Remaining"))
	if !ok || remaining > 0 {
		return false, reset
	}
	if _, lw, ok := rateLimitField(h.Get("RateLimit-Limit")); ok && w < 0 {
		w = lw
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(h.Get("RateLimit-Reset")), 10, 64); err == nil && n >= 0 {
		return true, seconds(n)
	}
	if w >= 0 {
		return true, seconds(w)
	}
	return true, reset
}

// rateLimitField parses "N" or "N;w=W" (the first of a list) into N and W
// (-1 when absent).
func rateLimitField(v string) (n, w int64, ok bool) {
	v, _, _ = strings.Cut(v, ",")
	num, params, _ := strings.Cut(v, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, -1, false
	}
	w = -1
	for p := range strings.SplitSeq(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "w") {
			if x, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil && x >= 0 {
				w = x
			}
		}
	}
	return n, w, true
}

// seconds turns n ≥ 0 seconds into a duration, saturating rather than
// overflowing.
func seconds(n int64) time.Duration {
	return time.Duration(min(n, int64(math.MaxInt64/time.Second))) * time.Second
}
