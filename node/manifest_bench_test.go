package node

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"go.uber.org/zap"
)

// discard is a ResponseWriter that keeps the status and drops the rest.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(status int)      { d.status = status }

// BenchmarkManifestRequest is the daemon's own cost of a warm manifest
// request, without net/http's reading and writing: the handler the
// listener calls, with the bench's config (rate limit off, log at warn,
// audit log on), for a cached 20-layer image's manifest by tag and by
// digest. make bench's scenario 5 measures the whole request against a
// reference; this shows what the handler's part costs and allocates.
func BenchmarkManifestRequest(b *testing.B) {
	up := testreg.Start(b)
	img, err := random.Image(64, 20)
	if err != nil {
		b.Fatal(err)
	}
	d := up.Push(b, "lib/app", "v1", img)
	dir := b.TempDir()
	path := filepath.Join(dir, "berth.yaml")
	cfgText := fmt.Sprintf(`dataDir: %q
log: {level: warn}
rateLimit: {disabled: true}
upstreams: [{name: bench, prefix: up, registry: bench.invalid, url: %s, default: true}]
`, filepath.Join(dir, "data"), up.URL)
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := New(context.Background(), cfg, Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(n.Close)
	h := n.Handler()
	accept := "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
	for _, c := range []struct{ name, method, ref string }{
		{"GET by tag", http.MethodGet, "v1"},
		{"GET by digest", http.MethodGet, d.String()},
		{"HEAD by tag", http.MethodHead, "v1"},
		{"HEAD by digest", http.MethodHead, d.String()},
	} {
		req, err := http.NewRequest(c.method, "/v2/up/lib/app/manifests/"+c.ref, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Accept", accept)
		serve := func() int {
			w := &discard{h: http.Header{}}
			h.ServeHTTP(w, req)
			return w.status
		}
		if st := serve(); st != http.StatusOK { // the first fills the cache
			b.Fatalf("%s: %d", c.name, st)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if st := serve(); st != http.StatusOK {
					b.Fatalf("%d", st)
				}
			}
		})
	}
}
