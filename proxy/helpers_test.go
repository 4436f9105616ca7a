package proxy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/cache"
	"berth/registry"
	"berth/upstream"

	"github.com/google/go-containerregistry/pkg/crane"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/zap/zaptest"
)

// counting wraps a real registry and counts the requests it sees.
type counting struct {
	h http.Handler

	mu     sync.Mutex
	counts map[string]int // "METHOD kind" -> n, kind is manifests, blobs, tags, base
	// mutate, when set, may replace the response for a request.
	mutate func(w http.ResponseWriter, r *http.Request) bool
}

func newCounting() *counting {
	return &counting{h: ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
}

func kindOf(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifests"
	case strings.Contains(path, "/blobs/uploads"):
		return "uploads"
	case strings.Contains(path, "/blobs/"):
		return "blobs"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	}
	return "base"
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.counts[r.Method+" "+kindOf(r.URL.Path)]++
	c.counts["total"]++
	m := c.mutate
	c.mu.Unlock()
	if m != nil && m(w, r) {
		return
	}
	c.h.ServeHTTP(w, r)
}

func (c *counting) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

func (c *counting) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

type env struct {
	up      *counting
	upSrv   *httptest.Server
	store   *cache.Store
	proxy   *Proxy
	berth   *httptest.Server
	clock   *fakeClock
	dataDir string
}

type envOpts struct {
	ttl, timeout, idle time.Duration
}

// newEnv starts a real upstream registry and Berth in front of it, routed
// by the prefix "up" and as the default rule.
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{up: newCounting(), clock: &fakeClock{t: time.Unix(1_800_000_000, 0)}, dataDir: t.TempDir()}
	e.upSrv = httptest.NewServer(e.up)
	t.Cleanup(e.upSrv.Close)
	ctx := context.Background()
	zl := zaptest.NewLogger(t)
	var err error
	e.store, err = cache.Open(ctx, e.dataDir, cache.Options{Logger: zl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	rule := upstream.Rule{Name: "up", Prefix: "up", Registry: "up.example", URL: e.upSrv.URL, Default: true,
		TTL: o.ttl, Timeout: o.timeout, IdleTimeout: o.idle}
	u, err := upstream.New(rule, nil, zl)
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = New(e.store, upstream.NewRouter([]*upstream.Upstream{u}), Options{Logger: zl, Now: e.clock.Now, FillTimeout: time.Minute})
	t.Cleanup(e.proxy.Close)
	e.berth = httptest.NewServer(registry.New(e.proxy, registry.WithLogger(zl)))
	t.Cleanup(e.berth.Close)
	return e
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// pushImage pushes img to the upstream as repo:tag.
func (e *env) pushImage(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := crane.Push(img, hostOf(e.upSrv)+"/"+repo+":"+tag); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// bigImage is an image with one layer of n deterministic bytes.
func bigImage(t *testing.T, n int, seed uint64) (v1.Image, []byte, v1.Hash) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(data[i:], r.Uint64())
	}
	layer := static.NewLayer(data, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layer.Digest()
	return img, data, d
}

// get does a request against Berth and returns status, headers and body.
func (e *env) do(t *testing.T, method, path string, hdr http.Header) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, e.berth.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// wantError checks an OCI error response.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	var eb struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("body %q is not an OCI error: %v", body, err)
	}
	if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		t.Fatalf("error %+v, want code %s with a message", eb.Errors[0], code)
	}
}

// throttle slows blob responses of the upstream down, and records when the
// last one finished.
type throttle struct {
	http.ResponseWriter
	chunk int
	delay time.Duration
}

func (w *throttle) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.chunk)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(w.delay)
		p = p[k:]
	}
	return n, nil
}
