package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/internal/oci"
	"berth/test/testreg"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ctNew returns a client of the registry at rawURL, through base (nil: the
// network), with short timeouts and a logger whose entries the test can
// read; edit changes the rule before the client is made.
func ctNew(t *testing.T, rawURL string, base http.RoundTripper, edit func(*Rule), opts ...Option) (*Upstream, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	r := Rule{Name: "test", Prefix: "t", URL: rawURL, Timeout: 2 * time.Second, IdleTimeout: 2 * time.Second}
	if edit != nil {
		edit(&r)
	}
	u, err := New(r, base, zap.New(core), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u, logs
}

// ctUpstream is ctNew over the network.
func ctUpstream(t *testing.T, rawURL string, edit func(*Rule)) *Upstream {
	t.Helper()
	u, _ := ctNew(t, rawURL, nil, edit)
	return u
}

// ctInProcess is ctNew through reg's in-process transport, for a test run
// in a testing/synctest bubble, where time is exact.
func ctInProcess(t *testing.T, reg *testreg.Registry, edit func(*Rule), opts ...Option) (*Upstream, *observer.ObservedLogs) {
	t.Helper()
	return ctNew(t, reg.URL, reg.Transport(), edit, opts...)
}

// ctPushBlob pushes an image whose only layer is data as repo:tag and
// returns the layer's digest.
func ctPushBlob(t *testing.T, reg *testreg.Registry, repo, tag string, data []byte) string {
	t.Helper()
	layer := static.NewLayer(data, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, repo, tag, img)
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// ctHang makes every request that match accepts hang until the client gives
// up or the test ends.
func ctHang(t *testing.T, reg *testreg.Registry, match func(*http.Request) bool) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // runs before the registry's Close
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if !match(r) {
			return false
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		return true
	})
}

func ctKind(method, kind string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && testreg.Kind(r.URL.Path) == kind
	}
}

func ctSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestHeadManifest(t *testing.T) {
	reg := testreg.Start(t)
	img := testreg.Image(t, 1, 1000, 2000)
	d := reg.Push(t, "team/app", "v1", img)
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	u := ctUpstream(t, reg.URL, nil)
	reg.Reset()

	for _, ref := range []string{"v1", d.String()} {
		got, err := u.HeadManifest(context.Background(), "team/app", ref)
		if err != nil {
			t.Fatalf("HeadManifest(%s): %v", ref, err)
		}
		want := Descriptor{MediaType: string(mt), Digest: d.String(), Size: int64(len(raw))}
		if got != want {
			t.Errorf("HeadManifest(%s) = %+v, want %+v", ref, got, want)
		}
	}
	if n := reg.Count("GET manifests"); n != 0 {
		t.Errorf("HeadManifest sent %d manifest GETs", n)
	}
	if n := reg.Count("HEAD manifests"); n != 2 {
		t.Errorf("HeadManifest sent %d manifest HEADs, want 2", n)
	}
}

func TestGetManifest(t *testing.T) {
	reg := testreg.Start(t)
	img := testreg.Image(t, 2, 3000)
	d := reg.Push(t, "team/app", "v1", img)
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	u := ctUpstream(t, reg.URL, nil)

	tests := []struct {
		name string
		ref  string
	}{
		{name: "by tag", ref: "v1"},
		{name: "by digest", ref: d.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, body, err := u.GetManifest(context.Background(), "team/app", tt.ref)
			if err != nil {
				t.Fatalf("GetManifest: %v", err)
			}
			if !bytes.Equal(body, raw) {
				t.Errorf("body = %s, want %s", body, raw)
			}
			if desc.Digest != ctSHA256(body) || desc.Digest != d.String() {
				t.Errorf("digest = %s, want %s (sha256 of the body)", desc.Digest, d)
			}
			if desc.MediaType != string(mt) || desc.Size != int64(len(raw)) {
				t.Errorf("descriptor = %+v, want media type %s size %d", desc, mt, len(raw))
			}
		})
	}

	// The Accept header lists every manifest type Berth understands.
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if testreg.Kind(r.URL.Path) == "manifests" {
			for _, mt := range []string{oci.MediaTypeImageIndex, oci.MediaTypeImageManifest, oci.MediaTypeDockerList, oci.MediaTypeDockerManifest} {
				if !strings.Contains(r.Header.Get("Accept"), mt) {
					t.Errorf("Accept %q lacks %s", r.Header.Get("Accept"), mt)
				}
			}
		}
		return false
	})
	if _, _, err := u.GetManifest(context.Background(), "team/app", "v1"); err != nil {
		t.Fatal(err)
	}
}

// A manifest served as application/json gets its media type from its body.
func TestGetManifestSniffsMediaType(t *testing.T) {
	reg := testreg.Start(t)
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "mediaType field", body: `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":` + ctConfig + `}`,
			want: "application/vnd.docker.distribution.manifest.v2+json"},
		{name: "index without mediaType", body: `{"schemaVersion":2,"manifests":[]}`, want: "application/vnd.oci.image.index.v1+json"},
		{name: "manifest without mediaType", body: `{"schemaVersion":2,"config":` + ctConfig + `,"layers":[]}`, want: "application/vnd.oci.image.manifest.v1+json"},
	}
	u := ctUpstream(t, reg.URL, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctServeManifests(reg, "application/json; charset=utf-8", tt.body)
			desc, body, err := u.GetManifest(context.Background(), "team/app", "v1")
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tt.body || desc.MediaType != tt.want || desc.Digest != ctSHA256(body) {
				t.Errorf("got %+v %s, want media type %s", desc, body, tt.want)
			}
		})
	}
}
