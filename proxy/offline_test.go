package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth/registry"
	"berth/upstream"

	"go.uber.org/zap/zaptest"
)

// offlineEnv is env with a router the test switches between the rule
// online and offline, as a reload does.
func offlineEnv(t *testing.T) (*env, func(offline bool)) {
	t.Helper()
	e := newEnv(t, envOpts{ttl: time.Minute})
	zl := zaptest.NewLogger(t)
	var cur atomic.Pointer[upstream.Router]
	set := func(offline bool) {
		rule := upstream.Rule{Name: "up", Prefix: "up", Registry: "up.example", URL: e.up.URL, Default: true,
			TTL: time.Minute, Offline: offline}
		u, err := upstream.New(rule, nil, zl)
		if err != nil {
			t.Fatal(err)
		}
		cur.Store(upstream.NewRouter([]*upstream.Upstream{u}))
	}
	set(false)
	e.proxy = New(e.store, func() *upstream.Router { return cur.Load() },
		Options{Logger: zl, Now: e.clock.Now, FillTimeout: time.Minute, Metrics: e.metrics})
	t.Cleanup(e.proxy.Close)
	e.berth = httptest.NewServer(registry.New(e.proxy, registry.WithLogger(zl)))
	t.Cleanup(e.berth.Close)
	return e, set
}

// An offline rule serves what is cached past its TTL, answers a miss at
// once with an error that says the mirror is offline, and sends the
// upstream nothing at all.
func TestOfflineServesCacheAndNeverAsksUpstream(t *testing.T) {
	e, setOffline := offlineEnv(t)
	img, _, layer := bigImage(t, 4096, 7)
	e.pushImage(t, "lib/app", "v1", img)
	other, _, _ := bigImage(t, 4096, 8)
	e.pushImage(t, "lib/other", "v1", other)
	d, _ := img.Digest()
	od, _ := other.Digest()
	for _, path := range []string{"/v2/up/lib/app/manifests/v1", "/v2/up/lib/app/blobs/" + layer.String()} {
		if resp, body, err := e.do(t, http.MethodGet, path, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s online: %v %v %s", path, err, resp, body)
		}
	}
	setOffline(true)
	e.up.Reset()
	e.clock.Add(time.Hour) // far past the TTL

	for _, path := range []string{"/v2/up/lib/app/manifests/v1", "/v2/up/lib/app/manifests/" + d.String(),
		"/v2/up/lib/app/blobs/" + layer.String(), "/v2/up/lib/app/tags/list"} {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			if resp, body, err := e.do(t, method, path, nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s %s offline: %v %v %s", method, path, err, resp, body)
			}
		}
	}
	misses := []struct{ path, code string }{
		{"/v2/up/lib/app/manifests/v2", "MANIFEST_UNKNOWN"},
		{"/v2/up/lib/other/manifests/v1", "MANIFEST_UNKNOWN"},
		{"/v2/up/lib/other/manifests/" + od.String(), "MANIFEST_UNKNOWN"},
		{"/v2/up/lib/other/blobs/sha256:" + strings.Repeat("ab", 32), "BLOB_UNKNOWN"},
	}
	for _, m := range misses {
		resp, body, err := e.do(t, http.MethodGet, m.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, resp, body, http.StatusNotFound, m.code)
		if !strings.Contains(string(body), "offline") {
			t.Errorf("GET %s: %s does not say the mirror is offline", m.path, body)
		}
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("the offline upstream saw %d requests: %v", n, e.up.Requests())
	}

	// Back online (a reload), the miss is filled from the upstream.
	setOffline(false)
	if resp, body, err := e.do(t, http.MethodGet, "/v2/up/lib/other/manifests/v1", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET online again: %v %v %s", err, resp, body)
	}
	if e.up.Count("total") == 0 {
		t.Fatal("the upstream saw no request once the rule was online again")
	}
}
