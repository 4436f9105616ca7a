package registry

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

var limiterEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func manifestRoute(name string) Route {
	return Route{Kind: KindManifest, Repo: Repo{Name: name}, Reference: "latest"}
}

func blobRoute(name string) Route {
	return Route{Kind: KindBlob, Repo: Repo{Name: name}, Reference: testSHA256, Digest: testSHA256}
}

// checkTooMany asserts that err is a 429 TOOMANYREQUESTS with a Retry-After
// of at least a second.
func checkTooMany(t *testing.T, err error) {
	t.Helper()

	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if re.Status != http.StatusTooManyRequests || re.Code != CodeTooManyRequests {
		t.Errorf("error = %d %s, want 429 %s", re.Status, re.Code, CodeTooManyRequests)
	}
	if re.RetryAfter < time.Second {
		t.Errorf("RetryAfter = %v, want at least 1s", re.RetryAfter)
	}
	if re.RetryAfter%time.Second != 0 {
		t.Errorf("RetryAfter = %v, want whole seconds", re.RetryAfter)
	}
}

func TestLimiterBurst(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		rps    float64
		burst  int
		calls  int
		admits int
		route  Route
	}{
		{name: "manifests", rps: 200, burst: 400, calls: 600, admits: 400, route: manifestRoute("a")},
		{name: "blobs without a pull", rps: 200, burst: 400, calls: 600, admits: 400, route: blobRoute("a")},
		{name: "tags", rps: 200, burst: 400, calls: 600, admits: 400, route: Route{Kind: KindTags, Repo: Repo{Name: "a"}}},
		{name: "base", rps: 200, burst: 400, calls: 600, admits: 400, route: Route{Kind: KindBase}},
		{name: "burst of one", rps: 1, burst: 1, calls: 10, admits: 1, route: manifestRoute("a")},
		{name: "slow refill", rps: 0.01, burst: 3, calls: 10, admits: 3, route: manifestRoute("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			l := NewLimiter(tt.rps, tt.burst)
			admitted := 0
			for i := 0; i < tt.calls; i++ {
				err := l.Admit("10.0.0.1", tt.route, limiterEpoch)
				if err == nil {
					admitted++
					if admitted != i+1 {
						t.Fatalf("call %d admitted after a refusal at a fixed time", i)
					}
					continue
				}
				checkTooMany(t, err)
				if t.Failed() {
					return
				}
			}
			if admitted != tt.admits {
				t.Errorf("admitted %d of %d calls, want %d", admitted, tt.calls, tt.admits)
			}
			// Refusals do not consume tokens: another client is unaffected
			// and this one recovers after the refill time.
			if err := l.Admit("10.0.0.2", tt.route, limiterEpoch); err != nil {
				t.Errorf("another client was refused: %v", err)
			}
			later := limiterEpoch.Add(time.Duration(float64(time.Second)/tt.rps) + time.Millisecond)
			if err := l.Admit("10.0.0.1", tt.route, later); err != nil {
				t.Errorf("client refused after the refill time: %v", err)
			}
		})
	}
}

func TestLimiterRetryAfter(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		rps   float64
		burst int
		want  time.Duration
	}{
		{name: "fast refill rounds up to a second", rps: 200, burst: 400, want: time.Second},
		{name: "one per second", rps: 1, burst: 1, want: time.Second},
		{name: "one per ten seconds", rps: 0.1, burst: 2, want: 10 * time.Second},
		{name: "fractional rounds up", rps: 0.4, burst: 1, want: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			l := NewLimiter(tt.rps, tt.burst)
			for i := 0; i < tt.burst; i++ {
				if err := l.Admit("c", manifestRoute("a"), limiterEpoch); err != nil {
					t.Fatalf("call %d refused: %v", i, err)
				}
			}
			err := l.Admit("c", manifestRoute("a"), limiterEpoch)
			checkTooMany(t, err)
			var re *Error
			if errors.As(err, &re) && re.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v, want %v", re.RetryAfter, tt.want)
			}
		})
	}
}

func TestLimiterPullGrace(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		manifest string        // repository whose manifest is admitted first
		blob     Route         // blob request after the bucket is drained
		after    time.Duration // time from the manifest to the blob request
		client   string        // client of the blob request; default the puller
		admitted bool
	}{
		{name: "same repository", manifest: "r", blob: blobRoute("r"), admitted: true},
		{name: "same repository later in the grace period", manifest: "r", blob: blobRoute("r"), after: 9 * time.Minute, admitted: true},
		{name: "another repository", manifest: "r", blob: blobRoute("other"), admitted: false},
		{name: "same name another ns", manifest: "r",
			blob: Route{Kind: KindBlob, Repo: Repo{Name: "r", NS: "docker.io"}, Digest: testSHA256}, admitted: false},
		{name: "same repository from another client", manifest: "r", blob: blobRoute("r"), client: "10.0.0.2", admitted: false},
		{name: "grace period over", manifest: "r", blob: blobRoute("r"), after: 11 * time.Minute, admitted: false},
		{name: "manifest is not part of a pull", manifest: "r", blob: manifestRoute("r"), admitted: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			// One token a day: the bucket stays empty for the whole test.
			l := NewLimiter(1.0/86400, 2)
			const puller = "10.0.0.1"
			if err := l.Admit(puller, manifestRoute(tt.manifest), limiterEpoch); err != nil {
				t.Fatalf("manifest refused: %v", err)
			}
			if err := l.Admit(puller, Route{Kind: KindTags, Repo: Repo{Name: "x"}}, limiterEpoch); err != nil {
				t.Fatalf("second request refused: %v", err)
			}
			if err := l.Admit(puller, blobRoute("drain"), limiterEpoch); err == nil {
				t.Fatal("bucket is not empty")
			}
			client := puller
			if tt.client != "" {
				client = tt.client
				// Drain the other client's bucket too.
				for i := 0; i < 2; i++ {
					_ = l.Admit(client, blobRoute("drain"), limiterEpoch)
				}
			}
			// Keep the puller's bucket from going idle (and being swept,
			// which would refill it): a refused request still counts as seen.
			_ = l.Admit(puller, Route{Kind: KindBase}, limiterEpoch.Add(tt.after/2))
			now := limiterEpoch.Add(tt.after)
			for i := 0; i < 100; i++ {
				err := l.Admit(client, tt.blob, now)
				if tt.admitted {
					if err != nil {
						t.Fatalf("blob request %d refused: %v", i, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("blob request %d admitted, want refused", i)
				}
				checkTooMany(t, err)
			}
		})
	}
}

func TestLimiterSweep(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		steps []time.Duration // when each client i first and only shows up
		check time.Duration   // when a last client shows up
		want  int             // buckets held after it
	}{
		{name: "nothing idle", steps: []time.Duration{0, time.Minute, 2 * time.Minute}, check: 3 * time.Minute, want: 4},
		{name: "all idle", steps: []time.Duration{0, time.Minute, 2 * time.Minute}, check: time.Hour, want: 1},
		{name: "some idle", steps: []time.Duration{0, time.Minute, 8 * time.Minute}, check: 12 * time.Minute, want: 2},
		{name: "sweep at most once a minute", steps: []time.Duration{0, 9*time.Minute + 30*time.Second}, check: 10*time.Minute + 15*time.Second, want: 3},
		{name: "sweep after a minute", steps: []time.Duration{0, 9*time.Minute + 30*time.Second}, check: 10*time.Minute + 31*time.Second, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			l := NewLimiter(10, 10)
			for i, d := range tt.steps {
				if err := l.Admit("client-"+strconv.Itoa(i), manifestRoute("a"), limiterEpoch.Add(d)); err != nil {
					t.Fatalf("client %d refused: %v", i, err)
				}
			}
			if err := l.Admit("last", manifestRoute("a"), limiterEpoch.Add(tt.check)); err != nil {
				t.Fatalf("last client refused: %v", err)
			}
			if got := l.Clients(); got != tt.want {
				t.Errorf("Clients() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestLimiterSweepResetsBucket checks that a client whose bucket was swept
// starts again with a full burst.
func TestLimiterSweepResetsBucket(t *testing.T) {
	t.Parallel()

	l := NewLimiter(1.0/86400, 3)
	for i := 0; i < 3; i++ {
		if err := l.Admit("c", manifestRoute("a"), limiterEpoch); err != nil {
			t.Fatalf("call %d refused: %v", i, err)
		}
	}
	checkTooMany(t, l.Admit("c", manifestRoute("a"), limiterEpoch))
	later := limiterEpoch.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if err := l.Admit("c", blobRoute("b"), later); err != nil {
			t.Fatalf("call %d after the sweep refused: %v", i, err)
		}
	}
	checkTooMany(t, l.Admit("c", blobRoute("b"), later))
	if got := l.Clients(); got != 1 {
		t.Errorf("Clients() = %d, want 1", got)
	}
}

func TestServerRateLimit(t *testing.T) {
	t.Parallel()

	// One token a day after a burst of 3: the fourth request is refused
	// whatever the wall clock does.
	tr := newTestRegistry(t, WithLimiter(NewLimiter(1.0/86400, 3)))

	blob := "/v2/library/ubuntu/blobs/" + tr.blobDigest.String()
	tests := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{name: "base", method: http.MethodGet, path: "/v2/", status: http.StatusOK},
		{name: "tags", method: http.MethodGet, path: "/v2/library/ubuntu/tags/list", status: http.StatusOK},
		{name: "manifest", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/latest", status: http.StatusOK},
		{name: "refused", method: http.MethodGet, path: "/v2/", status: http.StatusTooManyRequests},
		{name: "refused HEAD", method: http.MethodHead, path: "/v2/library/debian/manifests/latest", status: http.StatusTooManyRequests},
		{name: "blob of the admitted pull", method: http.MethodGet, path: blob, status: http.StatusOK},
		{name: "blob of the admitted pull again", method: http.MethodHead, path: blob, status: http.StatusOK},
		{name: "blob of another repository", method: http.MethodGet, path: "/v2/library/debian/blobs/" + tr.blobDigest.String(), status: http.StatusTooManyRequests},
		{name: "invalid path is not limited", method: http.MethodGet, path: "/v2/Bad/manifests/latest", status: http.StatusBadRequest},
	}
	// Sequential: every request spends the one client's tokens.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tr.do(t, tt.method, tt.path, nil)
			if tt.status != http.StatusTooManyRequests {
				if resp.StatusCode != tt.status {
					t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
				}
				return
			}
			checkErrorBody(t, tt.method, resp, body, http.StatusTooManyRequests, CodeTooManyRequests)
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Errorf("Retry-After = %q, want a number of seconds >= 1", resp.Header.Get("Retry-After"))
			}
			if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
				t.Errorf("Docker-Distribution-API-Version = %q, want registry/2.0", v)
			}
		})
	}
}

// TestLimiterPushGrace: the chunks of an upload whose session was admitted
// pass with an empty bucket; a new session does not.
func TestLimiterPushGrace(t *testing.T) {
	l := NewLimiter(1.0/86400, 1)
	start := Route{Kind: KindBlobUpload, Repo: Repo{Name: "private/app"}}
	chunk := Route{Kind: KindBlobUpload, Repo: Repo{Name: "private/app"}, UploadID: "abc"}
	other := Route{Kind: KindBlobUpload, Repo: Repo{Name: "private/other"}, UploadID: "def"}
	if err := l.Admit("c", start, limiterEpoch); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := l.Admit("c", chunk, limiterEpoch); err != nil {
			t.Fatalf("chunk %d of an admitted upload refused: %v", i, err)
		}
	}
	checkTooMany(t, l.Admit("c", start, limiterEpoch))
	checkTooMany(t, l.Admit("c", other, limiterEpoch))
}

// rejectAll is a Guard that refuses every request as unauthenticated.
type rejectAll struct{}

func (rejectAll) Check(r *http.Request, req AccessRequest) (string, error) {
	return "", Errorf(http.StatusUnauthorized, CodeUnauthorized, "authentication required")
}

// TestFailedLoginsAreRateLimited: a loop of bad credentials spends the
// address's tokens and turns into 429s, and the first refusal is reported.
func TestFailedLoginsAreRateLimited(t *testing.T) {
	var reported []string
	lim := NewLimiter(1.0/86400, 5).OnLimit(func(key string) { reported = append(reported, key) })
	srv := httptest.NewServer(New(newMemBackend(), WithLimiter(lim), WithGuard(rejectAll{})))
	defer srv.Close()
	counts := map[int]int{}
	for range 20 {
		resp, err := http.Get(srv.URL + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		counts[resp.StatusCode]++
	}
	if counts[http.StatusUnauthorized] != 5 || counts[http.StatusTooManyRequests] != 15 {
		t.Fatalf("statuses %v, want 5 401s then 429s", counts)
	}
	if len(reported) != 1 || reported[0] != "ip:127.0.0.1" {
		t.Fatalf("refusals reported %v, want one for ip:127.0.0.1", reported)
	}
}

// TestPerKeyRates: a key with its own rate gets its own burst.
func TestPerKeyRates(t *testing.T) {
	lim := NewLimiter(1.0/86400, 2).WithRates(func(key string) (float64, int, bool) {
		if key == "user:ci" {
			return 1.0 / 86400, 10, true
		}
		return 0, 0, false
	})
	admitted := func(key string) int {
		n := 0
		for range 20 {
			if lim.Admit(key, Route{Kind: KindBase}, limiterEpoch) == nil {
				n++
			}
		}
		return n
	}
	if got := admitted("user:ci"); got != 10 {
		t.Fatalf("user:ci admitted %d, want its own burst of 10", got)
	}
	if got := admitted("user:alice"); got != 2 {
		t.Fatalf("user:alice admitted %d, want the default burst of 2", got)
	}
}

// A reload that keeps a client's limits keeps its bucket (an emptied
// bucket stays empty); one that changes them applies the new ones to the
// tokens the client holds.
func TestLimiterSetRatesKeepsBuckets(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1.0/86400, 2)
	for i := 0; i < 2; i++ {
		if err := l.Admit("ip:a", manifestRoute("a"), limiterEpoch); err != nil {
			t.Fatal(err)
		}
	}
	checkTooMany(t, l.Admit("ip:a", manifestRoute("a"), limiterEpoch))

	l.SetRates(limiterEpoch, 1.0/86400, 2, nil) // unchanged
	checkTooMany(t, l.Admit("ip:a", manifestRoute("a"), limiterEpoch))

	// Another user gets a larger burst: the emptied default bucket stays
	// empty, the user's new bucket starts with the new burst.
	l.SetRates(limiterEpoch, 1.0/86400, 2, func(key string) (float64, int, bool) {
		return 1.0 / 86400, 5, key == "user:bob"
	})
	checkTooMany(t, l.Admit("ip:a", manifestRoute("a"), limiterEpoch))
	for i := 0; i < 5; i++ {
		if err := l.Admit("user:bob", manifestRoute("a"), limiterEpoch); err != nil {
			t.Fatalf("bob's request %d refused: %v", i, err)
		}
	}
	checkTooMany(t, l.Admit("user:bob", manifestRoute("a"), limiterEpoch))

	// A faster rate applies to the existing bucket at once.
	l.SetRates(limiterEpoch, 1, 2, nil)
	if err := l.Admit("ip:a", manifestRoute("a"), limiterEpoch.Add(time.Second)); err != nil {
		t.Fatalf("after raising the rate to 1/s, a request a second later was refused: %v", err)
	}
}

// passwordGuard accepts alice:right by Basic credentials and counts the
// password checks it makes (each a bcrypt in the real guard).
type passwordGuard struct {
	mu     sync.Mutex
	checks int
}

func (g *passwordGuard) Check(r *http.Request, req AccessRequest) (string, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", nil
	}
	g.mu.Lock()
	g.checks++
	g.mu.Unlock()
	if user == "alice" && pass == "right" {
		return user, nil
	}
	return "", Errorf(http.StatusUnauthorized, CodeUnauthorized, "invalid username or password")
}

func (g *passwordGuard) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.checks
}

// lgGet sends GET /v2/ with Basic user:pass ("" user: none) and returns
// the status.
func lgGet(t *testing.T, srv *httptest.Server, user, pass string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Guessing one user's password from one address backs off after
// LoginFailureBurst failures, and refused guesses never reach the password
// check; another user from the same address is not held back.
func TestPasswordGuessingBacksOffBeforeTheCheck(t *testing.T) {
	g := &passwordGuard{}
	srv := httptest.NewServer(New(newMemBackend(), WithLimiter(NewLimiter(1.0/86400, 1000)), WithGuard(g)))
	defer srv.Close()
	counts := map[int]int{}
	for range 20 {
		counts[lgGet(t, srv, "alice", "guess")]++
	}
	if counts[http.StatusUnauthorized] != LoginFailureBurst || counts[http.StatusTooManyRequests] != 20-LoginFailureBurst {
		t.Fatalf("statuses %v, want %d 401s then 429s", counts, LoginFailureBurst)
	}
	if got := g.count(); got != LoginFailureBurst {
		t.Fatalf("%d password checks for 20 guesses, want %d: refused guesses must not reach the check", got, LoginFailureBurst)
	}
	if st := lgGet(t, srv, "bob", "guess"); st != http.StatusUnauthorized {
		t.Errorf("bob's first failure from the same address: %d, want 401", st)
	}
}

// An address whose bucket is empty is refused before its credentials are
// checked; good logins give the address's token back and are charged to
// the user instead.
func TestAddressLimitStandsBeforeTheCheck(t *testing.T) {
	g := &passwordGuard{}
	srv := httptest.NewServer(New(newMemBackend(), WithLimiter(NewLimiter(1.0/86400, 3)), WithGuard(g)))
	defer srv.Close()
	for i := range 3 {
		if st := lgGet(t, srv, "alice", "right"); st != http.StatusOK {
			t.Fatalf("good login %d: %d", i, st)
		}
	}
	for i := range 3 {
		if st := lgGet(t, srv, "", ""); st != http.StatusOK {
			t.Fatalf("anonymous request %d after good logins: %d; good logins must not spend the address's tokens", i, st)
		}
	}
	checks := g.count()
	if st := lgGet(t, srv, "bob", "guess"); st != http.StatusTooManyRequests {
		t.Fatalf("login from an exhausted address: %d, want 429", st)
	}
	if g.count() != checks {
		t.Fatal("the login from an exhausted address reached the password check")
	}
}
