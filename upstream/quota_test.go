package upstream

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"berth/internal/testclock"
	"berth/test/testreg"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// qtUpstream is ctNew over the network.
func qtUpstream(t *testing.T, rawURL string, edit func(*Rule)) (*Upstream, *observer.ObservedLogs) {
	t.Helper()
	return ctNew(t, rawURL, nil, edit)
}

// qtCalls are the client's calls, by name, for one repository.
func qtCalls(digest string) map[string]func(u *Upstream) error {
	return map[string]func(u *Upstream) error{
		"HeadManifest": func(u *Upstream) error { _, err := u.HeadManifest(context.Background(), "team/app", "v1"); return err },
		"GetManifest": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
			return err
		},
		"GetBlob": func(u *Upstream) error {
			rc, _, err := u.GetBlobRange(context.Background(), "team/app", digest, 0, -1)
			if rc != nil {
				io.Copy(io.Discard, rc)
				rc.Close()
			}
			return err
		},
		"HeadBlob": func(u *Upstream) error { _, err := u.HeadBlob(context.Background(), "team/app", digest); return err },
		"ListTags": func(u *Upstream) error { _, err := u.ListTags(context.Background(), "team/app"); return err },
		"GetReferrers": func(u *Upstream) error {
			_, err := u.GetReferrers(context.Background(), "team/app", digest)
			return err
		},
	}
}

// qtWarnings counts the warnings logged with msg.
func qtWarnings(logs *observer.ObservedLogs, msg string) int {
	return logs.FilterLevelExact(zapcore.WarnLevel).FilterMessage(msg).Len()
}

const (
	qtUpstreamWarn = "upstream backing off: pulls fail at once until then"
	qtCredWarn     = "upstream credential backing off; the other credentials carry on"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{name: "seconds", value: "7", want: 7 * time.Second, wantOK: true},
		{name: "seconds with spaces", value: " 120 ", want: 2 * time.Minute, wantOK: true},
		{name: "zero", value: "0", want: 0, wantOK: true},
		{name: "HTTP date", value: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second, wantOK: true},
		{name: "HTTP date in the past", value: now.Add(-time.Hour).Format(http.TimeFormat), want: 0, wantOK: true},
		{name: "huge, saturated", value: "99999999999999999", want: time.Duration(math.MaxInt64/int64(time.Second)) * time.Second, wantOK: true},
		{name: "empty", value: ""},
		{name: "negative", value: "-5"},
		{name: "garbage", value: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.value, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestReadSignal(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		status   int
		hdr      map[string]string
		wantOK   bool
		wantHard bool
		wantWait time.Duration
	}{
		{name: "429 with Retry-After", status: 429, hdr: map[string]string{"Retry-After": "7"},
			wantOK: true, wantHard: true, wantWait: 7 * time.Second},
		{name: "429 with an HTTP date", status: 429, hdr: map[string]string{"Retry-After": now.Add(time.Minute).Format(http.TimeFormat)},
			wantOK: true, wantHard: true, wantWait: time.Minute},
		{name: "429 without a time", status: 429, wantOK: true, wantHard: true, wantWait: defaultBackoff},
		{name: "429 with RateLimit-Reset", status: 429, hdr: map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
			wantOK: true, wantHard: true, wantWait: 30 * time.Second},
		{name: "429, Retry-After wins over RateLimit-Reset", status: 429,
			hdr:    map[string]string{"Retry-After": "9", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
			wantOK: true, wantHard: true, wantWait: 9 * time.Second},
		{name: "429 with Retry-After 0 waits the minimum", status: 429, hdr: map[string]string{"Retry-After": "0"},
			wantOK: true, wantHard: true, wantWait: minBackoff},
		{name: "429 with an absurd Retry-After waits the maximum", status: 429, hdr: map[string]string{"Retry-After": "86400000"},
			wantOK: true, wantHard: true, wantWait: maxBackoff},
		{name: "Docker Hub quota spent", status: 200, hdr: map[string]string{"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600"},
			wantOK: true, wantWait: maxBackoff},
		{name: "Docker Hub quota spent, short window", status: 200, hdr: map[string]string{"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=30"},
			wantOK: true, wantWait: 30 * time.Second},
		{name: "window only on RateLimit-Limit", status: 200, hdr: map[string]string{"RateLimit-Limit": "100;w=45", "RateLimit-Remaining": "0"},
			wantOK: true, wantWait: 45 * time.Second},
		{name: "IETF draft", status: 200, hdr: map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "12"},
			wantOK: true, wantWait: 12 * time.Second},
		{name: "RateLimit-Reset wins over the window", status: 200, hdr: map[string]string{"RateLimit-Remaining": "0;w=21600", "RateLimit-Reset": "12"},
			wantOK: true, wantWait: 12 * time.Second},
		{name: "quota spent on a HEAD's 200", status: 200, hdr: map[string]string{"RateLimit-Remaining": "0;w=0"},
			wantOK: true, wantWait: minBackoff},
		{name: "quota spent without a time", status: 200, hdr: map[string]string{"RateLimit-Remaining": "0"},
			wantOK: true, wantWait: defaultBackoff},
		{name: "quota spent on a 404", status: 404, hdr: map[string]string{"RateLimit-Remaining": "0;w=30"},
			wantOK: true, wantWait: 30 * time.Second},
		{name: "quota left", status: 200, hdr: map[string]string{"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600"}},
		{name: "garbage remaining", status: 200, hdr: map[string]string{"RateLimit-Remaining": "none"}},
		{name: "plain 200", status: 200},
		{name: "503 is not a backoff", status: 503, hdr: map[string]string{"Retry-After": "30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			for k, v := range tt.hdr {
				resp.Header.Set(k, v)
			}
			s, ok := readSignal(resp, now)
			if ok != tt.wantOK {
				t.Fatalf("readSignal ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if s.hard != tt.wantHard || s.until.Sub(now) != tt.wantWait || s.reason == "" {
				t.Errorf("signal = %+v (wait %s), want hard %v, wait %s", s, s.until.Sub(now), tt.wantHard, tt.wantWait)
			}
		})
	}
}

// The bucket lets burst requests through at once, then requestsPerSecond.
func TestQuotaBucketLimitsRate(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 30, 100))
	synctest.Test(t, func(t *testing.T) {
		u, _ := ctInProcess(t, reg, func(r *Rule) { r.RequestsPerSecond, r.Burst = 20, 5 })
		if _, err := u.HeadManifest(context.Background(), "team/app", "v1"); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		time.Sleep(time.Second) // the bucket fills up again
		reg.Reset()

		// Half way between two tokens, so that no token comes at the
		// deadline itself.
		const window = 475 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), window)
		defer cancel()
		start := time.Now()
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			_, err = u.HeadManifest(ctx, "team/app", "v1")
		}
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrBackoff) {
			t.Errorf("the request past the window: %v, want ErrUnavailable and ErrTimeout", err)
		}
		// 5 at once, then one every 50 ms: at 50, 100, ... 450 ms; the one
		// at 500 ms is refused at once.
		if n := reg.Count("HEAD manifests"); n != 14 {
			t.Errorf("the upstream saw %d requests in %s, want 14", n, window)
		}
		if took != 450*time.Millisecond {
			t.Errorf("the loop took %s, want 450ms", took)
		}
		if u.Throttled() != 1 {
			t.Errorf("Throttled = %d, want 1", u.Throttled())
		}
	})
}

// A request whose token would come after its deadline fails at once, as a
// timeout, so the proxy serves stale content without waiting; one without
// a deadline waits, cut by the first-byte watchdog for blobs or by the
// caller.
func TestQuotaBucketDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name string
		call func(u *Upstream, digest string, ctx context.Context) error
		// cancel cancels the caller's context after this long (0: never).
		cancel       time.Duration
		wantTimeout  bool
		wantCanceled bool
		took         time.Duration
	}{
		{name: "HeadManifest fails at once", wantTimeout: true,
			call: func(u *Upstream, _ string, ctx context.Context) error {
				_, err := u.HeadManifest(ctx, "team/app", "v1")
				return err
			}},
		{name: "GetManifest fails at once", wantTimeout: true,
			call: func(u *Upstream, _ string, ctx context.Context) error {
				_, _, err := u.GetManifest(ctx, "team/app", "v1")
				return err
			}},
		{name: "GetBlob waits for the first-byte timeout", wantTimeout: true, took: timeout,
			call: func(u *Upstream, d string, ctx context.Context) error {
				rc, _, err := u.GetBlobRange(ctx, "team/app", d, 0, -1)
				if rc != nil {
					rc.Close()
				}
				return err
			}},
		{name: "caller cancels the wait", cancel: 100 * time.Millisecond, wantCanceled: true, took: 100 * time.Millisecond,
			call: func(u *Upstream, d string, ctx context.Context) error {
				rc, _, err := u.GetBlobRange(ctx, "team/app", d, 0, -1)
				if rc != nil {
					rc.Close()
				}
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			d := ctPushBlob(t, reg, "team/app", "v1", testreg.Bytes(1000, 31))
			synctest.Test(t, func(t *testing.T) {
				// One token, the next in 10 s.
				u, _ := ctInProcess(t, reg, func(r *Rule) { r.RequestsPerSecond, r.Burst, r.Timeout = 0.1, 1, timeout })
				if _, err := u.HeadManifest(context.Background(), "team/app", "v1"); err != nil {
					t.Fatalf("first request: %v", err)
				}
				reg.Reset()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tt.cancel > 0 {
					time.AfterFunc(tt.cancel, cancel)
				}
				start := time.Now()
				err := tt.call(u, d, ctx)
				took := time.Since(start)
				if got := errors.Is(err, ErrUnavailable) && errors.Is(err, ErrTimeout); got != tt.wantTimeout {
					t.Errorf("err = %v; ErrUnavailable and ErrTimeout: %v, want %v", err, got, tt.wantTimeout)
				}
				if got := errors.Is(err, context.Canceled); got != tt.wantCanceled {
					t.Errorf("err = %v; context.Canceled: %v, want %v", err, got, tt.wantCanceled)
				}
				if errors.Is(err, ErrBackoff) {
					t.Errorf("%v is ErrBackoff", err)
				}
				if took != tt.took {
					t.Errorf("failed after %s, want %s", took, tt.took)
				}
				if n := reg.Count("total"); n != 0 {
					t.Errorf("the upstream saw %d requests: %q", n, reg.Requests())
				}
			})
		})
	}
}

func TestQuotaUnlimited(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 32, 100))
	u, _ := qtUpstream(t, reg.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 50 {
		if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// The ping, then 50 HEADs.
	if u.Requests() != 51 || u.Throttled() != 0 {
		t.Errorf("Requests = %d, Throttled = %d; want 51, 0", u.Requests(), u.Throttled())
	}
}

// After a 429 or a spent quota the upstream is not contacted until the time
// it gave; the refusals are ErrUnavailable, so stale content is served.
func TestBackoff(t *testing.T) {
	tests := []struct {
		name string
		// status and hdr answer the first manifest request (status 200:
		// the registry's answer, with hdr added).
		status int
		hdr    func(now time.Time) map[string]string
		// hard: HEADs wait too.
		hard bool
	}{
		{name: "429 with Retry-After", status: 429, hard: true,
			hdr: func(time.Time) map[string]string { return map[string]string{"Retry-After": "2"} }},
		{name: "429 with a Retry-After date", status: 429, hard: true,
			hdr: func(now time.Time) map[string]string {
				return map[string]string{"Retry-After": now.Add(2 * time.Second).UTC().Format(http.TimeFormat)}
			}},
		{name: "429 with RateLimit-Reset", status: 429, hard: true,
			hdr: func(time.Time) map[string]string {
				return map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "2"}
			}},
		{name: "Docker Hub quota spent", status: 200,
			hdr: func(time.Time) map[string]string {
				return map[string]string{"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=2"}
			}},
		{name: "IETF quota spent", status: 200,
			hdr: func(time.Time) map[string]string {
				return map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "2"}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := testreg.Start(t)
			d := ctPushBlob(t, reg, "team/app", "v1", testreg.Bytes(1000, 33))
			clock := testclock.New()
			var once atomic.Bool
			reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
				if testreg.Kind(r.URL.Path) != "manifests" || !once.CompareAndSwap(false, true) {
					return false
				}
				for k, v := range tt.hdr(clock.Now()) {
					w.Header().Set(k, v)
				}
				if tt.status == http.StatusOK {
					reg.Serve(w, r)
				} else {
					w.WriteHeader(tt.status)
				}
				return true
			})
			u, logs := ctNew(t, reg.URL, nil, nil, WithClock(clock.Now))
			start := clock.Now()
			_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
			if tt.status == http.StatusOK && err != nil {
				t.Fatalf("GetManifest: %v", err)
			}
			if tt.status != http.StatusOK && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("GetManifest: %v, want ErrUnavailable", err)
			}
			if errors.Is(err, ErrBackoff) {
				t.Errorf("the request that was answered 429 is ErrBackoff: %v", err)
			}
			until, ok := u.Backoff()
			if !ok || !until.Equal(start.Add(2*time.Second)) {
				t.Fatalf("Backoff() = %s, %v; want 2 s from now", until.Sub(start), ok)
			}
			reg.Reset()

			calls := qtCalls(d)
			heads := map[string]bool{"HeadManifest": true, "HeadBlob": true}
			wantThrottled := int64(0)
			for _, name := range []string{"GetManifest", "GetBlob", "HeadBlob", "ListTags", "GetReferrers", "HeadManifest"} {
				if heads[name] && !tt.hard {
					continue
				}
				wantThrottled++
				err := calls[name](u)
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBackoff) {
					t.Errorf("%s: %v, want ErrUnavailable and ErrBackoff", name, err)
				}
				var be *BackoffError
				if !errors.As(err, &be) || !be.Until.Equal(until) || be.Upstream != "test" {
					t.Errorf("%s: %v (%T), want a BackoffError until %s", name, err, err, until)
				}
				if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v is ErrNotFound, ErrTimeout or context.Canceled", name, err)
				}
			}
			if n := reg.Count("total"); n != 0 {
				t.Errorf("the upstream saw %d requests while backing off: %q", n, reg.Requests())
			}
			if !tt.hard {
				// A spent quota spares HEADs: Docker Hub does not count them.
				for name := range heads {
					if err := calls[name](u); err != nil {
						t.Errorf("%s while the quota is spent: %v", name, err)
					}
				}
				if n := reg.Count("HEAD manifests") + reg.Count("HEAD blobs"); n != 2 || reg.Count("total") != 2 {
					t.Errorf("the upstream saw %q, want one manifest HEAD and one blob HEAD", reg.Requests())
				}
			}
			if got := u.Throttled(); got != wantThrottled {
				t.Errorf("Throttled = %d, want %d", got, wantThrottled)
			}
			if n := qtWarnings(logs, qtUpstreamWarn); n != 1 {
				t.Errorf("%d backoff warnings, want 1: %v", n, logs.All())
			}

			clock.Advance(until.Sub(clock.Now()) - time.Nanosecond)
			if _, ok := u.Backoff(); !ok {
				t.Error("the backoff ended before the time given")
			}
			clock.Advance(time.Nanosecond)
			if _, ok := u.Backoff(); ok {
				t.Error("still backing off after the time given")
			}
			for _, name := range []string{"GetManifest", "GetBlob", "ListTags"} {
				if err := calls[name](u); err != nil {
					t.Errorf("%s after the backoff: %v", name, err)
				}
			}
			if n := reg.Count("GET manifests"); n != 1 {
				t.Errorf("the upstream saw %d manifest GETs after the backoff, want 1", n)
			}
		})
	}
}

// Many 429s at once start one backoff, logged once; a later, longer one
// extends it.
func TestBackoffLoggedOnce(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 34, 100))
	var retryAfter atomic.Value
	retryAfter.Store("30")
	clock := testclock.New()
	u, logs := ctNew(t, reg.URL, nil, nil, WithClock(clock.Now))
	if _, err := u.HeadManifest(context.Background(), "team/app", "v1"); err != nil {
		t.Fatal(err)
	}
	ready, release := make(chan struct{}), make(chan struct{})
	var arrived atomic.Int32
	const n = 8
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if arrived.Add(1) == n {
			close(ready)
		}
		<-release
		w.Header().Set("Retry-After", retryAfter.Load().(string))
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := u.HeadManifest(context.Background(), "team/app", "v1")
			errs <- err
		}()
	}
	<-ready
	close(release)
	for range n {
		if err := <-errs; !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBackoff) {
			t.Errorf("err = %v, want a 429", err)
		}
	}
	if c := qtWarnings(logs, qtUpstreamWarn); c != 1 {
		t.Errorf("%d backoff warnings, want 1", c)
	}
	first, ok := u.Backoff()
	if !ok || !first.Equal(clock.Now().Add(30*time.Second)) {
		t.Fatalf("Backoff() = %s, %v; want 30 s", first.Sub(clock.Now()), ok)
	}

	// A longer answer to a request that was in flight extends the backoff
	// without a new warning.
	u.observe(u.eps[0], u.eps[0].pool.creds[0], &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"600"}}})
	if until, ok := u.Backoff(); !ok || !until.Equal(clock.Now().Add(600*time.Second)) {
		t.Errorf("Backoff() = %s, %v; want 600 s", until.Sub(clock.Now()), ok)
	}
	// A shorter one does not shorten it.
	u.observe(u.eps[0], u.eps[0].pool.creds[0], &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"5"}}})
	if until, ok := u.Backoff(); !ok || !until.Equal(clock.Now().Add(600*time.Second)) {
		t.Errorf("Backoff() = %s, %v; want still 600 s", until.Sub(clock.Now()), ok)
	}
	if c := qtWarnings(logs, qtUpstreamWarn); c != 1 {
		t.Errorf("%d backoff warnings, want 1", c)
	}
}
