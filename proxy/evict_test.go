package proxy

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"berth/internal/oci"
	"berth/reclaim"
	"berth/store"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pullAll pulls ref of team/app the way a client does: the manifest, an
// index's children, and every blob; it returns the manifest's digest.
func (e *env) pullAll(t *testing.T, ref string) string {
	t.Helper()
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/app/manifests/"+ref, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s: %v %v %s", ref, err, resp, body)
	}
	var doc oci.Manifest
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Manifests {
		e.pullAll(t, c.Digest)
	}
	var blobs []oci.Descriptor
	if doc.Config != nil {
		blobs = append(blobs, *doc.Config)
	}
	for _, b := range append(blobs, doc.Layers...) {
		if resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/app/blobs/"+b.Digest, nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob %s: %v %v %s", b.Digest, err, resp, body)
		}
	}
	// The client has a fill's last byte before the commit: the eviction
	// tests look at the store next.
	if err := e.proxy.WaitFills(t.Context()); err != nil {
		t.Fatal(err)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// pushIndex pushes an index of two random images of layers layers each
// to the upstream as team/app:tag.
func (e *env) pushIndex(t *testing.T, tag string, layers int64) {
	t.Helper()
	idx, err := random.Index(1024, layers, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(e.up.Host() + "/team/app:" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
}

// TestEvictionKeepsImagePulledByDigest: an index pulled once by tag and
// then every day only by one platform's digest (as kubelets pull)
// survives eviction pressure that removes an image pulled later than the
// tag but never again; pulling it by tag afterwards asks the upstream
// nothing.
func TestEvictionKeepsImagePulledByDigest(t *testing.T) {
	e := newEnv(t, envOpts{ttl: 1000 * time.Hour, storeClock: true})
	e.pushIndex(t, "daily", 2)
	e.pushImage(t, "team/app", "idle", randomImage(t))

	daily := e.pullAll(t, "daily")
	var doc oci.Manifest
	m, err := e.store.GetManifest(t.Context(), daily)
	if err != nil || json.Unmarshal(m.Body, &doc) != nil || len(doc.Manifests) != 2 {
		t.Fatalf("index %s not stored as an index: %v", daily, err)
	}
	e.clock.Add(time.Hour)
	idle := e.pullAll(t, "idle")
	var idleDoc oci.Manifest
	if m, err := e.store.GetManifest(t.Context(), idle); err != nil || json.Unmarshal(m.Body, &idleDoc) != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.clock.Add(24 * time.Hour)
		e.manifestDigest(t, "/v2/up/team/app/manifests/"+doc.Manifests[0].Digest)
	}

	// Pressure: room for less than what is stored, by one byte.
	used := e.store.Stats().BlobBytes
	rep, err := reclaim.New(e.store, reclaim.Options{}).Evict(t.Context(), used-1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ImagesEvicted != 1 {
		t.Fatalf("evicted %+v, want exactly the idle image", rep)
	}
	if _, err := e.store.GetTag(t.Context(), "up", "team/app", "idle"); err == nil {
		t.Fatal("the idle image's tag survived the eviction")
	}
	if _, err := e.store.StatBlob(t.Context(), idleDoc.Layers[0].Digest); err == nil {
		t.Fatal("the idle image's layer survived the eviction")
	}
	e.up.Reset()
	if got := e.pullAll(t, "daily"); got != daily {
		t.Fatalf("daily: %s, want %s", got, daily)
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("pulling the image in daily use after the eviction asked the upstream %d times: %v", n, e.up.Requests())
	}
	if im, err := e.store.GetImage(t.Context(), store.CachedKey("up", "team/app"), daily); err != nil || im.LastPulledAt.IsZero() {
		t.Fatalf("index record %+v (%v)", im, err)
	}
}

// TestEvictionKeepsPinnedIndexPlatforms: a pinned index keeps the
// records of the manifests it lists, not only their blobs, so it is
// pulled whole from the store after any eviction.
func TestEvictionKeepsPinnedIndexPlatforms(t *testing.T) {
	e := newEnv(t, envOpts{ttl: 1000 * time.Hour, storeClock: true})
	e.pushIndex(t, "pinned", 1)
	pinned := e.pullAll(t, "pinned")
	e.clock.Add(24 * time.Hour)
	pin := func(_, _, digest string) bool { return digest == pinned }
	if _, err := reclaim.New(e.store, reclaim.Options{}).Evict(t.Context(), 0, pin); err != nil {
		t.Fatal(err)
	}
	e.up.Reset()
	e.pullAll(t, "pinned")
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("the pinned index after an eviction to nothing asked the upstream %d times: %v", n, e.up.Requests())
	}
}

// TestPullDuringEvictionSurvivesIt: a client pulls an image while an
// eviction runs (after its walk: pulls do not wait for deleters), and the
// eviction takes another image that shares the pulled one's base layer.
// With the upstream down afterwards, the image pulled is served whole
// from the store: the eviction took nothing it needs.
func TestPullDuringEvictionSurvivesIt(t *testing.T) {
	e := newEnv(t, envOpts{ttl: 1000 * time.Hour, storeClock: true})
	base := static.NewLayer(testreg.Bytes(4096, 1), types.DockerLayer)
	image := func(seed uint64) v1.Image {
		img, err := mutate.AppendLayers(empty.Image, base, static.NewLayer(testreg.Bytes(4096, seed), types.DockerLayer))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	e.pushImage(t, "team/app", "old", image(2))
	e.pushImage(t, "team/app", "new", image(3))
	e.pullAll(t, "old")
	e.clock.Add(time.Hour)

	r := reclaim.New(e.store, reclaim.Options{Planned: func() { e.pullAll(t, "new") }})
	rep, err := r.Evict(t.Context(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ImagesEvicted != 1 {
		t.Fatalf("evicted %+v, want the old image, the one image the eviction planned for", rep)
	}
	e.up.Mutate(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	e.pullAll(t, "new")
}
