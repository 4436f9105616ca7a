package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"berth/internal/testclock"
	"berth/test/testreg"
)

// foDown is the URL of a registry that is no longer there: connections to
// it are refused.
func foDown(t *testing.T) string {
	t.Helper()
	reg := testreg.Start(t)
	reg.Close()
	return reg.URL
}

// foRule makes the client's rule fail over over urls.
func foRule(urls ...string) func(*Rule) {
	return func(r *Rule) { r.URL, r.URLs = "", urls }
}

// A partial mirror in front of the origin: what the mirror has comes from
// it, what it answers 404 for comes from the origin, and what neither has
// is not found.
func TestFailoverPartialMirror(t *testing.T) {
	mirror, origin := testreg.Start(t), testreg.Start(t)
	cached := testreg.Image(t, 1, 100, 200)
	mirror.Push(t, "team/app", "v1", cached)
	origin.Push(t, "team/app", "v1", cached)
	blob := ctPushBlob(t, origin, "team/app", "v2", []byte("only at the origin"))
	mirror.Reset()
	origin.Reset()
	u := ctUpstream(t, mirror.URL, foRule(mirror.URL, origin.URL))
	ctx := context.Background()

	if _, _, err := u.GetManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("GetManifest(v1): %v", err)
	}
	if got, want := mirror.Count("GET manifests"), 1; got != want || origin.Count("total") != 0 {
		t.Fatalf("v1: mirror saw %d manifest GETs (want %d), origin %d requests (want 0)", got, want, origin.Count("total"))
	}
	if _, _, err := u.GetManifest(ctx, "team/app", "v2"); err != nil {
		t.Fatalf("GetManifest(v2): %v", err)
	}
	rc, _, err := u.GetBlobRange(ctx, "team/app", blob, 0, -1)
	if err != nil {
		t.Fatalf("GetBlobRange: %v", err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(body) != "only at the origin" {
		t.Fatalf("blob = %q, %v", body, err)
	}
	for key, want := range map[string]int{"GET manifests": 1, "GET blobs": 1} {
		if got := origin.Count(key); got != want {
			t.Errorf("origin saw %d %s, want %d", got, key, want)
		}
	}
	if got := mirror.Count("GET manifests") + mirror.Count("GET blobs"); got != 3 {
		t.Errorf("mirror saw %d GETs, want 3 (v1, v2 and the blob)", got)
	}
	if _, _, err := u.GetManifest(ctx, "team/app", "nowhere"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetManifest(nowhere) = %v, want ErrNotFound", err)
	}
	for _, ep := range u.Endpoints() {
		if !ep.Healthy || ep.Failures != 0 {
			t.Errorf("endpoint %s: %+v; a 404 says nothing against its health", ep.URL, ep)
		}
	}
}

// An endpoint that is down is passed over, set aside (tried last) for a
// while, and tried first again once that while is over.
func TestFailoverDownEndpoint(t *testing.T) {
	clock := testclock.New()
	flaky, origin := testreg.Start(t), testreg.Start(t)
	origin.Push(t, "team/app", "v1", testreg.Image(t, 1, 100, 200))
	flaky.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	down := foDown(t)
	origin.Reset()
	u, _ := ctNew(t, down, nil, foRule(down, flaky.URL, origin.URL), WithClock(clock.Now))
	ctx := context.Background()

	if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	st := u.Endpoints()
	if st[0].Healthy || st[0].Failures != 1 || st[0].LastError == "" || st[1].Healthy || !st[2].Healthy {
		t.Fatalf("after one pull: %+v", st)
	}
	if flaky.Count("total") == 0 || origin.Count("HEAD manifests") != 1 {
		t.Fatalf("flaky saw %d requests (want some), origin %d HEADs (want 1)", flaky.Count("total"), origin.Count("HEAD manifests"))
	}

	// While set aside, the sick endpoints are not asked first.
	flaky.Reset()
	if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	if n := flaky.Count("total"); n != 0 {
		t.Errorf("flaky endpoint asked %d times while set aside", n)
	}

	// Once the while is over, they come first again.
	clock.Advance(2 * minDown)
	if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	if n := flaky.Count("total"); n == 0 {
		t.Error("flaky endpoint not asked again after its while")
	}
	if st := u.Endpoints(); st[0].Failures != 2 || st[2].Failures != 0 || st[2].LastOK.IsZero() {
		t.Errorf("after three pulls: %+v", st)
	}
}

// When the mirror lacks an object and the origin is down, the object is
// unavailable, not missing: a stale copy may be served.
func TestFailoverMirrorMissOriginDown(t *testing.T) {
	mirror := testreg.Start(t)
	down := foDown(t)
	u := ctUpstream(t, mirror.URL, foRule(mirror.URL, down))
	_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Fatalf("GetManifest = %v, want ErrUnavailable", err)
	}
}

// A 429 backs off that endpoint alone; the next one carries on, and the
// upstream backs off only when every endpoint does.
func TestFailoverBackoffPerEndpoint(t *testing.T) {
	clock := testclock.New()
	limited, origin := testreg.Start(t), testreg.Start(t)
	origin.Push(t, "team/app", "v1", testreg.Image(t, 1, 100, 200))
	limited.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	u, _ := ctNew(t, limited.URL, nil, foRule(limited.URL, origin.URL), WithClock(clock.Now))
	ctx := context.Background()
	if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	asked := limited.Count("total")
	if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	if n := limited.Count("total"); n != asked {
		t.Errorf("the endpoint that answered 429 was asked again while backing off (%d requests, then %d)", asked, n)
	}
	st := u.Endpoints()
	if st[0].Backoff.IsZero() || !st[0].Healthy || !st[1].Backoff.IsZero() {
		t.Errorf("endpoints: %+v", st)
	}
	if _, off := u.Backoff(); off {
		t.Error("the upstream backs off while one endpoint is free")
	}
}
