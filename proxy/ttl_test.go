package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"berth/internal/oci"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// TestReferrersKeptForTTLAndServedStale: a referrers index from the
// upstream is kept for the rule's TTL, asked again after it, and served
// stale when the upstream then fails.
func TestReferrersKeptForTTLAndServedStale(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Minute, timeout: 500 * time.Millisecond})
	subject := "sha256:" + strings.Repeat("ab", 32)
	sbom := "sha256:" + strings.Repeat("cd", 32)
	var asked atomic.Int32
	var failing atomic.Bool
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		asked.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		w.Header().Set("Content-Type", oci.MediaTypeImageIndex)
		_, _ = w.Write([]byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageIndex + `","manifests":[{"mediaType":"` +
			oci.MediaTypeImageManifest + `","digest":"` + sbom + `","size":10,"artifactType":"application/vnd.example.sbom"}]}`))
		return true
	})
	path := "/v2/up/team/app/referrers/" + subject
	get := func(what string) {
		t.Helper()
		resp, body, err := e.do(t, http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		var idx oci.Manifest
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &idx) != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom {
			t.Fatalf("%s: %d %s, want the index listing %s", what, resp.StatusCode, body, sbom)
		}
	}

	get("cold")
	get("within the TTL")
	if n := asked.Load(); n != 1 {
		t.Fatalf("the upstream was asked %d times within the TTL, want once", n)
	}
	e.clock.Add(2 * time.Minute)
	get("after the TTL")
	if n := asked.Load(); n != 2 {
		t.Fatalf("after the TTL the upstream was asked %d times in all, want 2", n)
	}
	failing.Store(true)
	e.clock.Add(2 * time.Minute)
	get("upstream failing")
	if n := asked.Load(); n < 3 {
		t.Fatalf("the expired index was served without asking the upstream (%d requests)", n)
	}
}

// TestTTLRecordConcurrentMissesFetchOnce: callers that miss the same
// record at once share one fetch, and each gets its answer.
func TestTTLRecordConcurrentMissesFetchOnce(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	synctest.Test(t, func(t *testing.T) {
		u, err := upstream.New(upstream.Rule{Name: "up", URL: "http://up.invalid", Default: true, TTL: time.Minute}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := New(st, upstream.Fixed(upstream.NewRouter([]*upstream.Upstream{u})), Options{})
		defer p.Close()
		r := ttlRecord{t: upstream.Target{Upstream: u, Repo: "team/app"}, tag: "v1", kind: "tag", ref: "v1"}
		var fetches atomic.Int32
		release := make(chan struct{})
		fetch := func(ctx context.Context, old *ttlEntry) (*registry.Manifest, error) {
			fetches.Add(1)
			<-release
			return &registry.Manifest{MediaType: oci.MediaTypeImageManifest, Digest: registry.Digest("sha256:" + strings.Repeat("0", 64)),
				Body: []byte("{}"), Source: registry.SourceUpstream}, nil
		}
		const callers = 5
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				m, err := p.ttlCached(t.Context(), r, fetch)
				if err == nil && m.Source != registry.SourceUpstream {
					t.Errorf("source %s", m.Source)
				}
				errs <- err
			})
		}
		synctest.Wait() // every caller is waiting on the one fetch
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if n := fetches.Load(); n != 1 {
			t.Errorf("%d fetches for %d concurrent misses, want 1", n, callers)
		}
	})
}

// gateClock is a fixed clock whose next reading, once armed, tells
// reached and waits until gate is closed.
type gateClock struct {
	mu            sync.Mutex
	t             time.Time
	reached, gate chan struct{}
}

func (c *gateClock) Now() time.Time {
	c.mu.Lock()
	reached, gate, t := c.reached, c.gate, c.t
	c.reached, c.gate = nil, nil
	c.mu.Unlock()
	if gate != nil {
		close(reached)
		<-gate
	}
	return t
}

// arm sets the clock to t and makes its next reading wait for gate.
func (c *gateClock) arm(t time.Time, reached, gate chan struct{}) {
	c.mu.Lock()
	c.t, c.reached, c.gate = t, reached, gate
	c.mu.Unlock()
}

// TestTTLRecordFetchedOnceAcrossFlights: a caller that read the stored
// record before another caller's fetch stored a fresh one, and asks for
// the fetch only after it ended, is served what that fetch stored; it
// does not fetch again. (In a cluster that second fetch was a second
// transfer of the manifest from the tag's owner.)
func TestTTLRecordFetchedOnceAcrossFlights(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := upstream.New(upstream.Rule{Name: "up", URL: "http://up.invalid", Default: true, TTL: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	clock := &gateClock{t: t0}
	p := New(st, upstream.Fixed(upstream.NewRouter([]*upstream.Upstream{u})), Options{Now: clock.Now})
	defer p.Close()
	tg := upstream.Target{Upstream: u, Repo: "team/app"}
	r := ttlRecord{t: tg, tag: "v1", kind: "tag", ref: "v1"}
	body := []byte(`{"schemaVersion":2}`)
	d := digestOf(body)
	var fetches atomic.Int32
	fetch := func(ctx context.Context, old *ttlEntry) (*registry.Manifest, error) {
		fetches.Add(1)
		sm := &store.Manifest{MediaType: oci.MediaTypeImageManifest, Body: body}
		if err := p.storeManifest(ctx, tg, d, sm, "v1"); err != nil {
			return nil, err
		}
		return toManifest(d, sm, registry.SourceUpstream), nil
	}
	if _, err := p.ttlCached(t.Context(), r, fetch); err != nil {
		t.Fatal(err)
	}
	// Past the TTL, caller B reads the stale record and stops at its
	// freshness check until caller A has fetched and stored it anew.
	reached, gate := make(chan struct{}), make(chan struct{})
	clock.arm(t0.Add(2*time.Minute), reached, gate)
	done := make(chan error, 1)
	go func() {
		_, err := p.ttlCached(t.Context(), r, fetch)
		done <- err
	}()
	<-reached
	if _, err := p.ttlCached(t.Context(), r, fetch); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: the first miss and one after the TTL, whose record the waiting caller is served", n)
	}
}
