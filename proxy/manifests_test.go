package proxy

import (
	"berth/test/testreg"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (e *env) manifestDigest(t *testing.T, path string) string {
	t.Helper()
	resp, body, err := e.do(t, http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

func TestTagTTLAndRevalidation(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Hour})
	a := e.pushImage(t, "team/app", "latest", randomImage(t))
	path := "/v2/up/team/app/manifests/latest"
	e.up.Reset()
	if got := e.manifestDigest(t, path); got != a.String() {
		t.Fatalf("digest %s, want %s", got, a)
	}
	if n := e.up.Count("GET manifests"); n != 1 {
		t.Fatalf("cold tag: %d manifest GETs, want 1", n)
	}

	// Retag upstream. Within the TTL the old digest is served and the
	// upstream is not asked at all.
	b := e.pushImage(t, "team/app", "latest", randomImage(t))
	e.up.Reset()
	e.clock.Add(59 * time.Minute)
	if got := e.manifestDigest(t, path); got != a.String() {
		t.Fatalf("within TTL: digest %s, want the cached %s", got, a)
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("within TTL: %d upstream requests, want 0", n)
	}

	// After the TTL: one HEAD sees the new digest, one GET fetches it.
	e.clock.Add(2 * time.Minute)
	if got := e.manifestDigest(t, path); got != b.String() {
		t.Fatalf("after TTL: digest %s, want %s", got, b)
	}
	if h, g := e.up.Count("HEAD manifests"), e.up.Count("GET manifests"); h != 1 || g != 1 {
		t.Fatalf("after TTL: %d HEADs and %d GETs, want 1 and 1", h, g)
	}

	// Expired again with no change upstream: a HEAD only.
	e.up.Reset()
	e.clock.Add(2 * time.Hour)
	if got := e.manifestDigest(t, path); got != b.String() {
		t.Fatalf("unchanged: digest %s, want %s", got, b)
	}
	if h, g := e.up.Count("HEAD manifests"), e.up.Count("GET manifests"); h != 1 || g != 0 {
		t.Fatalf("unchanged: %d HEADs and %d GETs, want 1 and 0", h, g)
	}
	// And fresh again: nothing.
	e.up.Reset()
	e.manifestDigest(t, path)
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("fresh after revalidation: %d upstream requests", n)
	}
}

func TestUpstreamDownServesCache(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Minute, timeout: 500 * time.Millisecond})
	img := randomImage(t)
	d := e.pushImage(t, "team/app", "v1", img)
	if _, err := crane.Pull(hostOf(e.berth) + "/up/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	if resp, _, err := e.do(t, http.MethodGet, "/v2/up/team/app/blobs/"+ld.String(), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("warm blob: %v", err)
	}
	e.up.Close()
	e.clock.Add(time.Hour)

	if got := e.manifestDigest(t, "/v2/up/team/app/manifests/v1"); got != d.String() {
		t.Fatalf("stale tag: %s, want %s", got, d)
	}
	if got := e.manifestDigest(t, "/v2/up/team/app/manifests/"+d.String()); got != d.String() {
		t.Fatalf("by digest: %s", got)
	}
	if resp, _, err := e.do(t, http.MethodGet, "/v2/up/team/app/blobs/"+ld.String(), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cached blob with upstream down: %v %v", err, resp)
	}
	if n := e.cacheCount("tag", "stale"); n != 1 {
		t.Fatalf("stale tags served: %v, want 1", n)
	}
	unknown := "sha256:" + strings.Repeat("ab", 32)
	for _, p := range []string{"/v2/up/team/app/blobs/" + unknown, "/v2/up/team/app/manifests/" + unknown, "/v2/up/team/app/manifests/other"} {
		resp, body, err := e.do(t, http.MethodGet, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, resp, body, http.StatusBadGateway, "UPSTREAM_UNAVAILABLE")
		// The client is told why, in plain words, without the request's URL.
		if b := string(body); !strings.Contains(b, "upstream up failed for ") ||
			!strings.Contains(b, ": dial tcp "+strings.TrimPrefix(e.up.URL, "http://")+": connect: connection refused") || strings.Contains(b, "http://") {
			t.Errorf("GET %s with the upstream's port closed: the message does not say why: %s", p, b)
		}
	}
}

func TestUpstreamHungServesStaleWithinTimeout(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Minute, timeout: 300 * time.Millisecond})
	d := e.pushImage(t, "team/app", "v1", randomImage(t))
	e.manifestDigest(t, "/v2/up/team/app/manifests/v1")
	release := make(chan struct{})
	defer close(release)
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		<-release // accept, never answer
		return true
	})
	e.clock.Add(time.Hour)
	start := time.Now()
	if got := e.manifestDigest(t, "/v2/up/team/app/manifests/v1"); got != d.String() {
		t.Fatalf("stale tag: %s", got)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("stale answer took %v; the timeout is 300ms", el)
	}
	// Nothing cached: a clear 504.
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/other/manifests/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, body, http.StatusGatewayTimeout, "UPSTREAM_TIMEOUT")
}

func TestTagGoneUpstreamIsForgotten(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Minute})
	e.pushImage(t, "team/app", "v1", randomImage(t))
	e.manifestDigest(t, "/v2/up/team/app/manifests/v1")
	if err := crane.Delete(e.up.Host() + "/team/app:v1"); err != nil {
		// The in-memory registry deletes by tag too.
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	resp, body, _ := e.do(t, http.MethodGet, "/v2/up/team/app/manifests/v1", nil)
	wantError(t, resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
	tags, err := e.store.ListTags(t.Context(), "up", "team/app")
	if err != nil || len(tags) != 0 {
		t.Fatalf("tags left in the store: %v %v", tags, err)
	}
}

func TestMultiArchIndex(t *testing.T) {
	e := newEnv(t, envOpts{})
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	ref, _ := name.ParseReference(e.up.Host() + "/team/multi:v1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	amdD, _ := amd.Digest()
	armD, _ := arm.Digest()
	e.up.Reset()
	resp, _, err := e.do(t, http.MethodGet, "/v2/up/team/multi/manifests/v1", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(err, resp)
	}
	if resp.Header.Get("Docker-Content-Digest") != want.String() || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index served as %s %s", resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"))
	}
	if n := e.up.Count("GET manifests"); n != 1 {
		t.Fatalf("%d manifest GETs for the index; children must wait until asked", n)
	}
	if got := e.manifestDigest(t, "/v2/up/team/multi/manifests/"+armD.String()); got != armD.String() {
		t.Fatalf("arm64 child %s", got)
	}
	// A client that does not accept indexes gets the linux/amd64 image.
	resp, _, err = e.do(t, http.MethodGet, "/v2/up/team/multi/manifests/v1",
		http.Header{"Accept": {"application/vnd.docker.distribution.manifest.v2+json"}})
	if err != nil || resp.Header.Get("Docker-Content-Digest") != amdD.String() {
		t.Fatalf("old client got %s, want the amd64 %s", resp.Header.Get("Docker-Content-Digest"), amdD)
	}
	// Pulled whole through Berth by crane with a platform.
	img, err := crane.Pull(hostOf(e.berth)+"/up/team/multi:v1", crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != armD {
		t.Fatalf("crane arm64 pull: %s, want %s", d, armD)
	}
}

func TestRoutingByNamespace(t *testing.T) {
	e := newEnv(t, envOpts{})
	d := e.pushImage(t, "library/alpine", "latest", randomImage(t))
	e.up.Reset()
	tests := []struct {
		name   string
		path   string
		status int
		code   string
	}{
		{name: "ns routes, name unchanged", path: "/v2/library/alpine/manifests/latest?ns=up.example", status: 200},
		{name: "default rule", path: "/v2/library/alpine/manifests/latest", status: 200},
		{name: "prefix stripped", path: "/v2/up/library/alpine/manifests/latest", status: 200},
		{name: "unknown ns is 404 so containerd falls back", path: "/v2/library/alpine/manifests/latest?ns=elsewhere.io", status: 404, code: "NAME_UNKNOWN"},
		{name: "invalid ns", path: "/v2/library/alpine/manifests/latest?ns=bad/ns", status: 400, code: "NAME_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := e.do(t, http.MethodGet, tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.code != "" {
				wantError(t, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status || resp.Header.Get("Docker-Content-Digest") != d.String() {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if strings.Contains(tt.path, "ns=") && resp.Header.Get("OCI-Namespace") == "" {
				t.Fatal("no OCI-Namespace header")
			}
		})
	}
	if n := e.up.Count("GET manifests"); n != 1 {
		t.Fatalf("upstream saw %d manifest GETs; the three routes share one cached tag", n)
	}
}

func TestManifestWithWrongDigestIsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	d := e.pushImage(t, "team/app", "v1", randomImage(t))
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write([]byte(`{"schemaVersion":2}`))
			return true
		}
		return false
	})
	resp, body, _ := e.do(t, http.MethodGet, "/v2/up/team/app/manifests/"+d.String(), nil)
	wantError(t, resp, body, http.StatusBadGateway, "UPSTREAM_UNAVAILABLE")
	if _, err := e.store.GetManifest(t.Context(), d.String()); err == nil {
		t.Fatal("a manifest that does not match its digest was stored")
	}
}

// TestUpstream429BacksOff: an upstream that answers 429 with Retry-After is
// not asked again before then; cached tags are served meanwhile, and what
// is not cached gets 503 with a Retry-After.
func TestUpstream429BacksOff(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Minute})
	d := e.pushImage(t, "team/app", "v1", randomImage(t))
	e.manifestDigest(t, "/v2/up/team/app/manifests/v1")
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if testreg.Kind(r.URL.Path) == "base" {
			return false
		}
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	e.clock.Add(time.Hour)
	e.up.Reset()
	// The revalidation meets the 429: the cached tag is served.
	if got := e.manifestDigest(t, "/v2/up/team/app/manifests/v1"); got != d.String() {
		t.Fatalf("stale tag: %s", got)
	}
	asked := e.up.Count("total")
	for range 5 {
		if got := e.manifestDigest(t, "/v2/up/team/app/manifests/v1"); got != d.String() {
			t.Fatalf("stale tag during backoff: %s", got)
		}
	}
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/other/manifests/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, body, http.StatusServiceUnavailable, "UPSTREAM_UNAVAILABLE")
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("503 without Retry-After: %v", resp.Header)
	}
	if n := e.up.Count("total"); n != asked {
		t.Fatalf("the upstream was asked %d more times during its backoff", n-asked)
	}
}
