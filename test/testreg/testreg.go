// Package testreg gives tests a real upstream registry (go-containerregistry's
// in-memory registry under httptest) that counts the requests it sees and
// can be made slow, wrong or silent.
package testreg

import (
	"encoding/binary"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is a running upstream.
type Registry struct {
	*httptest.Server
	h http.Handler

	mu       sync.Mutex
	counts   map[string]int
	requests []string
	mutate   func(w http.ResponseWriter, r *http.Request) bool
}

// Option changes the registry Start runs.
type Option func(*[]ggcr.Option)

// WithReferrers turns on the registry's referrers API; without it the
// registry answers 404 there, as a registry without the API does.
func WithReferrers() Option {
	return func(o *[]ggcr.Option) { *o = append(*o, ggcr.WithReferrersSupport(true)) }
}

// Start runs a registry on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	gopts := []ggcr.Option{ggcr.Logger(log.New(io.Discard, "", 0))}
	for _, o := range opts {
		o(&gopts)
	}
	r := &Registry{h: ggcr.New(gopts...), counts: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Server.Close)
	return r
}

// Host is host:port of the registry.
func (r *Registry) Host() string { return strings.TrimPrefix(r.URL, "http://") }

// Kind names the endpoint a path addresses: manifests, blobs, uploads, tags
// or base.
func Kind(path string) string {
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

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.counts[req.Method+" "+Kind(req.URL.Path)]++
	r.counts["total"]++
	r.requests = append(r.requests, req.Method+" "+req.URL.RequestURI())
	m := r.mutate
	r.mu.Unlock()
	if m != nil && m(w, req) {
		return
	}
	r.h.ServeHTTP(w, req)
}

// Count returns how many requests of "METHOD kind" (e.g. "GET blobs") were
// seen, or all of them for "total".
func (r *Registry) Count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

// Requests returns "METHOD /path?query" of every request seen.
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// PerPath counts the requests seen by "METHOD /path" (no query).
func (r *Registry) PerPath() map[string]int {
	out := map[string]int{}
	for _, req := range r.Requests() {
		p, _, _ := strings.Cut(req, "?")
		out[p]++
	}
	return out
}

// Reset forgets the counts.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]int{}
	r.requests = nil
}

// Mutate installs f, which may answer a request itself (returning true)
// instead of the registry; nil restores normal answers.
func (r *Registry) Mutate(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	r.mutate = f
	r.mu.Unlock()
}

// Serve passes a request to the real registry (for use inside Mutate).
func (r *Registry) Serve(w http.ResponseWriter, req *http.Request) { r.h.ServeHTTP(w, req) }

// SlowBlobs makes blob GETs send 1 MiB pieces with delay after each.
func (r *Registry) SlowBlobs(delay time.Duration) {
	r.Mutate(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodGet || Kind(req.URL.Path) != "blobs" {
			return false
		}
		r.h.ServeHTTP(&Throttle{ResponseWriter: w, Chunk: 1 << 20, Delay: delay}, req)
		return true
	})
}

// Push pushes img as repo:tag.
func (r *Registry) Push(t testing.TB, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := crane.Push(img, r.Host()+"/"+repo+":"+tag); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Bytes returns n deterministic pseudo-random bytes.
func Bytes(n int, seed uint64) []byte {
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
	}
	return data
}

// Image builds an image whose layers have the given sizes, with
// deterministic contents derived from seed.
func Image(t testing.TB, seed uint64, sizes ...int) v1.Image {
	t.Helper()
	img := empty.Image
	for i, n := range sizes {
		var err error
		img, err = mutate.AppendLayers(img, static.NewLayer(Bytes(n, seed*1000+uint64(i)), types.DockerLayer))
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// Throttle pauses for Delay after every Chunk bytes written, however the
// handler sizes its writes.
type Throttle struct {
	http.ResponseWriter
	Chunk int
	Delay time.Duration
	since int // bytes written since the last pause
}

func (w *Throttle) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.Chunk-w.since)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		w.since += m
		if err != nil {
			return n, err
		}
		if w.since >= w.Chunk {
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(w.Delay)
			w.since = 0
		}
		p = p[k:]
	}
	return n, nil
}

// PullAll pulls ref as a client does, the manifest and every layer (which
// verifies each layer's digest), and returns the image's digest.
func PullAll(ref string) (v1.Hash, error) { return PullInto(ref, io.Discard) }

// PullInto is PullAll writing the layers' bytes to w.
func PullInto(ref string, w io.Writer) (v1.Hash, error) {
	img, err := crane.Pull(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}
