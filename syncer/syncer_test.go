package syncer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/config"
	"berth/internal/testclock"
	"berth/proxy"
	"berth/registry"
	"berth/store"
	"berth/test/testreg"
	"berth/upstream"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"
)

type env struct {
	up    *testreg.Registry
	store *store.Store
	proxy *proxy.Proxy
	berth *httptest.Server
	clock *testclock.Clock
	prom  *prometheus.Registry
	s     *Syncer
	rules []config.SyncRule
}

func newEnv(t *testing.T, rules ...config.SyncRule) *env {
	t.Helper()
	e := &env{up: testreg.Start(t), clock: testclock.New(), prom: prometheus.NewRegistry(), rules: rules}
	zl := zaptest.NewLogger(t)
	var err error
	if e.store, err = store.Open(context.Background(), t.TempDir(), store.Options{Logger: zl}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	u, err := upstream.New(upstream.Rule{Name: "up", Prefix: "up", URL: e.up.URL}, nil, zl)
	if err != nil {
		t.Fatal(err)
	}
	routes := upstream.Fixed(upstream.NewRouter([]*upstream.Upstream{u}))
	e.proxy = proxy.New(e.store, routes, proxy.Options{Logger: zl, Now: e.clock.Now})
	t.Cleanup(e.proxy.Close)
	e.berth = httptest.NewServer(registry.New(e.proxy, registry.WithLogger(zl)))
	t.Cleanup(e.berth.Close)
	e.s = New(Options{Backend: e.proxy, Routes: routes, Rules: func() []config.SyncRule { return e.rules },
		Store: e.store, Registerer: e.prom, Logger: zl, Now: e.clock.Now})
	t.Cleanup(e.s.Close)
	return e
}

// pushIndex pushes a two-platform index as repo:tag and returns it.
func (e *env) pushIndex(t *testing.T, repo, tag string) v1.ImageIndex {
	t.Helper()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testreg.Image(t, 11, 2000), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: testreg.Image(t, 12, 2000), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	ref, err := name.ParseReference(e.up.Host() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func wait(chans []chan struct{}) {
	for _, c := range chans {
		<-c
	}
}

func (e *env) get(t *testing.T, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.berth.URL+path, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A run fills the selected tags, their chosen platforms and layers before
// any client asks; a client's pull then sends the upstream nothing. Tags
// and platforms not selected are left alone.
func TestRunFillsSelectedTagsAhead(t *testing.T) {
	e := newEnv(t, config.SyncRule{Name: "morning", Upstream: "up", Repositories: []string{"lib/app", "lib/m*"},
		Tags: config.SyncTags{Semver: ">=1.1"}, Platforms: []string{"linux/amd64"}, Pin: true, Interval: time.Hour})
	digests := map[string]v1.Hash{}
	for i, tag := range []string{"1.0", "1.1", "2.0", "latest"} {
		digests[tag] = e.up.Push(t, "lib/app", tag, testreg.Image(t, uint64(i+1), 3000, 5000))
	}
	idx := e.pushIndex(t, "lib/multi", "1.2")
	im, _ := idx.IndexManifest()
	e.up.Push(t, "other/app", "1.5", testreg.Image(t, 9, 100))

	started, next := e.s.RunDue()
	if len(started) != 1 || !next.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("first RunDue started %d runs, next %v", len(started), next)
	}
	wait(started)
	st := e.s.Describe()
	if len(st) != 1 || st[0].LastRun == nil || st[0].LastRun.Images != 3 || st[0].LastRun.Bytes == 0 || len(st[0].LastRun.Errors) > 0 {
		t.Fatalf("describe after the run: %+v %+v", st, st[0].LastRun)
	}
	var m dto.Metric
	if err := e.s.metrics.images.WithLabelValues("morning").Write(&m); err != nil || m.GetCounter().GetValue() != 3 {
		got := m.GetCounter().GetValue()
		t.Errorf("berth_sync_images_total = %v, want 3", got)
	}

	e.up.Reset()
	for _, p := range []string{"/v2/up/lib/app/manifests/1.1", "/v2/up/lib/app/manifests/2.0", "/v2/up/lib/multi/manifests/1.2",
		"/v2/up/lib/multi/manifests/" + im.Manifests[0].Digest.String()} {
		if code := e.get(t, p); code != http.StatusOK {
			t.Fatalf("GET %s after the sync: %d", p, code)
		}
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("pulls of synced images sent the upstream %d requests: %v", n, e.up.Requests())
	}
	ctx := context.Background()
	for _, left := range []struct{ repo, tag string }{{"lib/app", "1.0"}, {"lib/app", "latest"}, {"other/app", "1.5"}} {
		if _, err := e.store.GetTag(ctx, "up", left.repo, left.tag); err == nil {
			t.Errorf("%s:%s was synced, but the rule does not select it", left.repo, left.tag)
		}
	}
	if _, err := e.store.GetManifest(ctx, im.Manifests[1].Digest.String()); err == nil {
		t.Error("the arm64 child was synced, but the rule wants linux/amd64 only")
	}
	if !e.s.Pinned(ctx, "up", "lib/app", digests["2.0"].String()) || e.s.Pinned(ctx, "up", "lib/app", digests["1.0"].String()) {
		t.Error("pin: true should pin the synced 2.0 and not the unselected 1.0")
	}

	refs, err := e.s.Refs(ctx, "morning")
	if err != nil || strings.Join(refs, " ") != "up/lib/app:1.1 up/lib/app:2.0 up/lib/multi:1.2" {
		t.Errorf("Refs (what export --sync-rule exports): %v %v, want the selected tags of lib/app and of lib/m*'s lib/multi", refs, err)
	}

	// The schedule: nothing is due before the interval, one run after it.
	if started, _ := e.s.RunDue(); len(started) != 0 {
		t.Fatalf("RunDue at once after a run started %d", len(started))
	}
	e.clock.Advance(time.Hour)
	started, _ = e.s.RunDue()
	if len(started) != 1 {
		t.Fatalf("RunDue after the interval started %d runs", len(started))
	}
	wait(started)
}

func TestSyncNow(t *testing.T) {
	e := newEnv(t, config.SyncRule{Name: "a", Upstream: "up", Repositories: []string{"lib/app"}, Tags: config.SyncTags{Regex: `v\d`, Latest: 1}})
	e.up.Push(t, "lib/app", "v1", testreg.Image(t, 1, 100))
	e.up.Push(t, "lib/app", "v2", testreg.Image(t, 2, 100))
	e.up.Push(t, "lib/app", "v10x", testreg.Image(t, 3, 100))
	if _, err := e.s.SyncNow(context.Background(), "nope", true); err == nil {
		t.Fatal("sync-now of an unknown rule succeeded")
	}
	st, err := e.s.SyncNow(context.Background(), "a", true)
	if err != nil || len(st) != 1 || st[0].LastRun == nil || st[0].LastRun.Images != 1 {
		t.Fatalf("sync-now --wait: %v %+v", err, st)
	}
	if _, err := e.store.GetTag(context.Background(), "up", "lib/app", "v2"); err != nil {
		t.Fatalf("latest: 1 should have synced v2: %v", err)
	}
	e.rules[0].Upstream = "gone"
	st, _ = e.s.SyncNow(context.Background(), "", true)
	if len(st[0].LastRun.Errors) != 1 {
		t.Fatalf("a rule whose upstream is gone: %+v", st[0].LastRun)
	}
}

// An upstream index nested deeper than maxDepth is not followed to the
// bottom: the run reports it instead of recursing without bound.
func TestSyncBoundsNesting(t *testing.T) {
	e := newEnv(t, config.SyncRule{Name: "a", Upstream: "up", Repositories: []string{"lib/app"}, Tags: config.SyncTags{Regex: `deep`}})
	var add mutate.Appendable = testreg.Image(t, 1, 100)
	for range maxDepth + 2 {
		add = mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: add})
	}
	ref, err := name.ParseReference(e.up.Host() + "/lib/app:deep")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, add.(v1.ImageIndex)); err != nil {
		t.Fatal(err)
	}
	st, err := e.s.SyncNow(context.Background(), "a", true)
	if err != nil || len(st) != 1 || st[0].LastRun == nil {
		t.Fatalf("sync-now: %v %+v", err, st)
	}
	if errs := st[0].LastRun.Errors; len(errs) != 1 || !strings.Contains(errs[0], "nested more than") {
		t.Fatalf("a too-deep index: %+v", st[0].LastRun)
	}
}
