package proxy

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/cache"
	"berth/registry"
	"berth/upstream"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
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
