package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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
		{name: "mediaType field", body: `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`,
			want: "application/vnd.docker.distribution.manifest.v2+json"},
		{name: "index without mediaType", body: `{"schemaVersion":2,"manifests":[]}`, want: "application/vnd.oci.image.index.v1+json"},
		{name: "manifest without mediaType", body: `{"schemaVersion":2,"layers":[]}`, want: "application/vnd.oci.image.manifest.v1+json"},
	}
	u := ctUpstream(t, reg.URL, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
				if testreg.Kind(r.URL.Path) != "manifests" {
					return false
				}
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				io.WriteString(w, tt.body)
				return true
			})
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

func TestClientErrors(t *testing.T) {
	const missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	answer := func(kind string, status int, hdr map[string]string) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if testreg.Kind(r.URL.Path) != kind {
				return false
			}
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			io.WriteString(w, `{"errors":[{"code":"X","message":"test answer"}]}`)
			return true
		}
	}
	calls := map[string]func(u *Upstream) error{
		"HeadManifest": func(u *Upstream) error { _, err := u.HeadManifest(context.Background(), "team/app", "v1"); return err },
		"GetManifest": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
			return err
		},
		"GetManifestUnknownTag": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", "nope")
			return err
		},
		"HeadManifestUnknownRepo": func(u *Upstream) error {
			_, err := u.HeadManifest(context.Background(), "team/none", "v1")
			return err
		},
		"GetManifestUnknownDigest": func(u *Upstream) error {
			_, _, err := u.GetManifest(context.Background(), "team/app", missing)
			return err
		},
		"GetBlob": func(u *Upstream) error {
			rc, _, err := u.GetBlobRange(context.Background(), "team/app", missing, 0, -1)
			if rc != nil {
				rc.Close()
			}
			return err
		},
		"HeadBlob":  func(u *Upstream) error { _, err := u.HeadBlob(context.Background(), "team/app", missing); return err },
		"ListTags":  func(u *Upstream) error { _, err := u.ListTags(context.Background(), "team/app"); return err },
		"ListTags0": func(u *Upstream) error { _, err := u.ListTags(context.Background(), "team/none"); return err },
	}
	tests := []struct {
		name           string
		mutate         func(w http.ResponseWriter, r *http.Request) bool
		call           string
		wantNotFound   bool
		wantUnavail    bool
		wantStatus     int
		wantRetryAfter time.Duration
	}{
		{name: "unknown tag is 404", call: "GetManifestUnknownTag", wantNotFound: true, wantStatus: 404},
		{name: "unknown repo HEAD is 404", call: "HeadManifestUnknownRepo", wantNotFound: true, wantStatus: 404},
		{name: "unknown digest is 404", call: "GetManifestUnknownDigest", wantNotFound: true, wantStatus: 404},
		{name: "unknown blob is 404", call: "GetBlob", wantNotFound: true, wantStatus: 404},
		{name: "unknown blob HEAD is 404", call: "HeadBlob", wantNotFound: true, wantStatus: 404},
		{name: "unknown repo tags is 404", call: "ListTags0", wantNotFound: true, wantStatus: 404},
		{name: "manifest 500", call: "GetManifest", mutate: answer("manifests", 500, nil), wantUnavail: true, wantStatus: 500},
		{name: "manifest HEAD 503", call: "HeadManifest", mutate: answer("manifests", 503, nil), wantUnavail: true, wantStatus: 503},
		{name: "manifest 429 with Retry-After", call: "GetManifest", mutate: answer("manifests", 429, map[string]string{"Retry-After": "7"}),
			wantUnavail: true, wantStatus: 429, wantRetryAfter: 7 * time.Second},
		{name: "manifest HEAD 429 with Retry-After", call: "HeadManifest", mutate: answer("manifests", 429, map[string]string{"Retry-After": "30"}),
			wantUnavail: true, wantStatus: 429, wantRetryAfter: 30 * time.Second},
		{name: "blob 502", call: "GetBlob", mutate: answer("blobs", 502, nil), wantUnavail: true, wantStatus: 502},
		{name: "blob 429", call: "GetBlob", mutate: answer("blobs", 429, map[string]string{"Retry-After": "2"}),
			wantUnavail: true, wantStatus: 429, wantRetryAfter: 2 * time.Second},
		{name: "tags 500", call: "ListTags", mutate: answer("tags", 500, nil), wantUnavail: true, wantStatus: 500},
		{name: "ping 500", call: "HeadManifest", mutate: answer("base", 500, nil), wantUnavail: true, wantStatus: 500},
		{name: "ping 429", call: "GetManifest", mutate: answer("base", 429, nil), wantUnavail: true, wantStatus: 429},
		{name: "manifest 403 is neither", call: "GetManifest", mutate: answer("manifests", 403, nil), wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			reg.Push(t, "team/app", "v1", testreg.Image(t, 3, 100))
			reg.Mutate(tt.mutate)
			err := calls[tt.call](ctUpstream(t, reg.URL, nil))
			if err == nil {
				t.Fatalf("%s succeeded", tt.call)
			}
			if got := errors.Is(err, ErrNotFound); got != tt.wantNotFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v", err, got)
			}
			if got := errors.Is(err, ErrUnavailable); got != tt.wantUnavail {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v", err, got)
			}
			if errors.Is(err, ErrTimeout) {
				t.Errorf("%v is ErrTimeout", err)
			}
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("%v (%T) is not a StatusError", err, err)
			}
			if se.Status != tt.wantStatus || se.RetryAfter != tt.wantRetryAfter || se.Upstream != "test" {
				t.Errorf("StatusError = %+v, want status %d, RetryAfter %s", se, tt.wantStatus, tt.wantRetryAfter)
			}
		})
	}
}

// A hung upstream fails with ErrUnavailable and ErrTimeout soon after the
// rule's timeout.
func TestClientTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name  string
		hang  func(*http.Request) bool
		call  func(u *Upstream, digest string) error
		limit time.Duration // the call must fail by then
	}{
		{name: "HeadManifest, whole registry hung", hang: func(*http.Request) bool { return true },
			call: func(u *Upstream, _ string) error {
				_, err := u.HeadManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "GetManifest, whole registry hung", hang: func(*http.Request) bool { return true },
			call: func(u *Upstream, _ string) error {
				_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "GetManifest hung", hang: ctKind(http.MethodGet, "manifests"),
			call: func(u *Upstream, _ string) error {
				_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "HeadManifest hung", hang: ctKind(http.MethodHead, "manifests"),
			call: func(u *Upstream, _ string) error {
				_, err := u.HeadManifest(context.Background(), "team/app", "v1")
				return err
			}, limit: timeout},
		{name: "GetBlob first byte", hang: ctKind(http.MethodGet, "blobs"),
			call: func(u *Upstream, d string) error {
				rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
				if rc != nil {
					rc.Close()
				}
				return err
			}, limit: timeout},
		{name: "GetBlob, whole registry hung", hang: func(*http.Request) bool { return true },
			call: func(u *Upstream, d string) error {
				rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
				if rc != nil {
					rc.Close()
				}
				return err
			}, limit: timeout},
		{name: "HeadBlob hung", hang: ctKind(http.MethodHead, "blobs"),
			call: func(u *Upstream, d string) error {
				_, err := u.HeadBlob(context.Background(), "team/app", d)
				return err
			},
			limit: timeout},
		{name: "ListTags hung", hang: ctKind(http.MethodGet, "tags"),
			call:  func(u *Upstream, _ string) error { _, err := u.ListTags(context.Background(), "team/app"); return err },
			limit: 4 * timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			d := ctPushBlob(t, reg, "team/app", "v1", testreg.Bytes(4096, 4))
			synctest.Test(t, func(t *testing.T) {
				ctHang(t, reg, tt.hang)
				u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = timeout })
				start := time.Now()
				err := tt.call(u, d)
				took := time.Since(start)
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrTimeout) {
					t.Errorf("err = %v, want ErrUnavailable and ErrTimeout", err)
				}
				if errors.Is(err, ErrNotFound) {
					t.Errorf("%v is ErrNotFound", err)
				}
				if took != tt.limit {
					t.Errorf("failed after %s, want %s", took, tt.limit)
				}
			})
		})
	}
}

// A caller that gives up is told so, not that the upstream is down.
func TestClientCallerCancels(t *testing.T) {
	reg := testreg.Start(t)
	synctest.Test(t, func(t *testing.T) {
		ctHang(t, reg, ctKind(http.MethodGet, "manifests"))
		u, _ := ctInProcess(t, reg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		time.AfterFunc(100*time.Millisecond, cancel)
		_, _, err := u.GetManifest(ctx, "team/app", "v1")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want context.Canceled and not ErrUnavailable", err)
		}
	})
}

func TestClientClosedUpstream(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	// Timeouts far longer than the test: an error that is not ErrTimeout
	// was noticed at once.
	u := ctUpstream(t, srv.URL, func(r *Rule) { r.Timeout, r.IdleTimeout = time.Hour, time.Hour })
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	calls := []struct {
		name string
		call func() error
	}{
		{name: "HeadManifest", call: func() error { _, err := u.HeadManifest(context.Background(), "a", "v1"); return err }},
		{name: "GetManifest", call: func() error { _, _, err := u.GetManifest(context.Background(), "a", "v1"); return err }},
		{name: "GetBlobRange", call: func() error { _, _, err := u.GetBlobRange(context.Background(), "a", d, 0, -1); return err }},
		{name: "HeadBlob", call: func() error { _, err := u.HeadBlob(context.Background(), "a", d); return err }},
		{name: "ListTags", call: func() error { _, err := u.ListTags(context.Background(), "a"); return err }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrUnavailable only", err)
			}
		})
	}
}

func TestGetBlob(t *testing.T) {
	reg := testreg.Start(t)
	data := testreg.Bytes(100_000, 5)
	d := ctPushBlob(t, reg, "team/app", "v1", data)

	// The test registry only understands closed ranges (bytes=a-b); serve
	// blob GETs through http.ServeContent, which does every form.
	var mu sync.Mutex
	var ranges []string
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
			return false
		}
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		full := r.Clone(r.Context())
		full.Header.Del("Range")
		rec := httptest.NewRecorder()
		reg.Serve(rec, full)
		if rec.Code != http.StatusOK {
			w.WriteHeader(rec.Code)
			return true
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rec.Body.Bytes()))
		return true
	})
	u := ctUpstream(t, reg.URL, nil)

	tests := []struct {
		name      string
		off       int64
		wantRange string
	}{
		{name: "whole", off: 0, wantRange: ""},
		{name: "from 1", off: 1, wantRange: "bytes=1-"},
		{name: "from the middle", off: 54_321, wantRange: "bytes=54321-"},
		{name: "last byte", off: int64(len(data) - 1), wantRange: fmt.Sprintf("bytes=%d-", len(data)-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			ranges = nil
			mu.Unlock()
			rc, size, err := u.GetBlobRange(context.Background(), "team/app", d, tt.off, -1)
			if err != nil {
				t.Fatalf("GetBlobRange: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if size != int64(len(data)) {
				t.Errorf("size = %d, want the whole blob's %d", size, len(data))
			}
			if !bytes.Equal(got, data[tt.off:]) {
				t.Errorf("got %d bytes, want the %d from offset %d", len(got), len(data)-int(tt.off), tt.off)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(ranges, []string{tt.wantRange}) {
				t.Errorf("Range headers sent: %q, want %q", ranges, tt.wantRange)
			}
		})
	}

	size, err := u.HeadBlob(context.Background(), "team/app", d)
	if err != nil || size != int64(len(data)) {
		t.Errorf("HeadBlob = %d, %v; want %d", size, err, len(data))
	}
}

// An upstream that ignores Range must not have its whole blob appended at an
// offset.
func TestGetBlobRangeIgnored(t *testing.T) {
	reg := testreg.Start(t)
	data := testreg.Bytes(10_000, 6)
	d := ctPushBlob(t, reg, "team/app", "v1", data)
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	})
	u := ctUpstream(t, reg.URL, nil)
	rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 100, -1)
	if err == nil {
		rc.Close()
		t.Fatal("GetBlobRange at an offset accepted a 200")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestGetBlobIdleTimeout(t *testing.T) {
	const idle = 250 * time.Millisecond
	reg := testreg.Start(t)
	data := testreg.Bytes(64<<10, 7)
	d := ctPushBlob(t, reg, "team/app", "v1", data)
	synctest.Test(t, func(t *testing.T) {
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return true
		})
		u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = 5 * time.Second; r.IdleTimeout = idle })
		rc, size, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
		if err != nil {
			t.Fatalf("GetBlob: %v", err)
		}
		defer rc.Close()
		if size != int64(len(data)) {
			t.Errorf("size = %d, want %d", size, len(data))
		}
		got := make([]byte, len(data))
		n, err := io.ReadFull(rc, got[:len(data)/2])
		if err != nil {
			t.Fatalf("read the bytes sent: %d, %v", n, err)
		}
		start := time.Now()
		n, err = rc.Read(got)
		took := time.Since(start)
		if n != 0 || !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("read after the stall = %d, %v; want 0, ErrUnavailable and ErrTimeout", n, err)
		}
		if took != idle {
			t.Errorf("stall noticed after %s, want %s", took, idle)
		}
	})
}

// A slow stream that keeps making progress is not cut, however long it
// takes in total.
func TestGetBlobSlowButSteady(t *testing.T) {
	const idle = 400 * time.Millisecond
	reg := testreg.Start(t)
	data := testreg.Bytes(5<<20, 8)
	d := ctPushBlob(t, reg, "team/app", "v1", data)
	synctest.Test(t, func(t *testing.T) {
		reg.SlowBlobs(idle - time.Millisecond) // 5 pieces, each just in time
		u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = 5 * time.Second; r.IdleTimeout = idle })
		start := time.Now()
		rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, 0, -1)
		if err != nil {
			t.Fatalf("GetBlob: %v", err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d", len(got), len(data))
		}
		if took, want := time.Since(start), 5*(idle-time.Millisecond); took != want {
			t.Fatalf("stream took %s, want %s (5 pieces)", took, want)
		}
	})
}

// Berth follows an upstream's redirects for blobs to an allowed host (a
// CDN, say) and does not pass its credentials along.
func TestGetBlobFollowsRedirect(t *testing.T) {
	tests := []struct {
		name  string
		token bool
	}{
		{name: "anonymous"},
		{name: "token auth", token: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			data := testreg.Bytes(300_000, 9)
			d := ctPushBlob(t, reg, "team/app", "v1", data)

			var mu sync.Mutex
			var cdnRequests []string
			cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				cdnRequests = append(cdnRequests, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
				mu.Unlock()
				if r.URL.Path != "/cdn/"+d {
					http.NotFound(w, r)
					return
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			}))
			t.Cleanup(cdn.Close)
			reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
					return false
				}
				http.Redirect(w, r, cdn.URL+"/cdn/"+d, http.StatusTemporaryRedirect)
				return true
			})

			cdnHost := strings.TrimPrefix(cdn.URL, "http://")
			target, edit := reg.URL, func(r *Rule) { r.AllowedHosts = []string{cdnHost} }
			if tt.token {
				ts := ctTokenServer(t, reg, "alice", "s3cret")
				target = ts.URL
				edit = func(r *Rule) {
					r.Username = "alice"
					r.PasswordFile = ctWriteFile(t, "pw", "s3cret\n")
					r.AllowedHosts = []string{cdnHost}
				}
			}
			u := ctUpstream(t, target, edit)

			for _, off := range []int64{0, 1000} {
				rc, _, err := u.GetBlobRange(context.Background(), "team/app", d, off, -1)
				if err != nil {
					t.Fatalf("GetBlobRange(off=%d): %v", off, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[off:]) {
					t.Fatalf("off=%d: got %d bytes, want %d", off, len(got), len(data)-int(off))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{"GET /cdn/" + d + " auth=", "GET /cdn/" + d + " auth="}
			if !slices.Equal(cdnRequests, want) {
				t.Errorf("CDN saw %q, want %q", cdnRequests, want)
			}
		})
	}
}

// ctPaginateTags makes the registry answer tag lists two at a time with a
// Link header, relative or absolute.
func ctPaginateTags(t *testing.T, reg *testreg.Registry, absolute bool) {
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "tags" {
			return false
		}
		all := r.Clone(r.Context())
		all.URL.RawQuery = ""
		all.RequestURI = all.URL.RequestURI()
		rec := httptest.NewRecorder()
		reg.Serve(rec, all)
		var list struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
			t.Errorf("tag list: %v", err)
			return false
		}
		tags := list.Tags
		if last := r.URL.Query().Get("last"); last != "" {
			i, _ := slices.BinarySearch(tags, last)
			for i < len(tags) && tags[i] <= last {
				i++
			}
			tags = tags[i:]
		}
		const n = 2
		if len(tags) > n {
			tags = tags[:n]
			next := r.URL.Path + "?" + url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}.Encode()
			if absolute {
				next = "http://" + r.Host + next
			}
			w.Header().Set("Link", "<"+next+`>; rel="next"`)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": list.Name, "tags": tags})
		return true
	})
}

func TestListTagsPagination(t *testing.T) {
	tests := []struct {
		name      string
		tags      []string
		absolute  bool
		wantPages int
	}{
		{name: "relative link, odd count", tags: []string{"v1", "v2", "v3", "v4", "v5"}, wantPages: 3},
		{name: "absolute link, odd count", tags: []string{"v1", "v2", "v3", "v4", "v5"}, absolute: true, wantPages: 3},
		{name: "exact pages", tags: []string{"a", "b", "c", "d"}, wantPages: 2},
		{name: "one page", tags: []string{"latest"}, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			img := testreg.Image(t, 10, 100)
			for _, tag := range tt.tags {
				reg.Push(t, "team/app", tag, img)
			}
			ctPaginateTags(t, reg, tt.absolute)
			reg.Reset()
			u := ctUpstream(t, reg.URL, nil)
			got, err := u.ListTags(context.Background(), "team/app")
			if err != nil {
				t.Fatalf("ListTags: %v", err)
			}
			if !slices.Equal(got, tt.tags) {
				t.Errorf("ListTags = %q, want %q", got, tt.tags)
			}
			if n := reg.Count("GET tags"); n != tt.wantPages {
				t.Errorf("fetched %d pages, want %d: %q", n, tt.wantPages, reg.Requests())
			}
		})
	}
}

// An upstream whose Link always points back at the first page must not
// keep Berth looping forever.
func TestListTagsPaginationLoopIsBounded(t *testing.T) {
	reg := testreg.Start(t)
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if testreg.Kind(r.URL.Path) != "tags" {
			return false
		}
		w.Header().Set("Link", "<"+r.URL.Path+`>; rel="next"`)
		io.WriteString(w, `{"name":"team/app","tags":["x"]}`)
		return true
	})
	u := ctUpstream(t, reg.URL, nil)
	got, err := u.ListTags(context.Background(), "team/app")
	if err != nil {
		t.Fatalf("ListTags: %v", err)
	}
	if n := reg.Count("GET tags"); n > 100 || len(got) != n {
		t.Errorf("fetched %d pages, %d tags", n, len(got))
	}
}

func TestNextLink(t *testing.T) {
	const cur = "https://r.example/v2/a/tags/list"
	tests := []struct {
		name string
		link string
		want string
	}{
		{name: "none", link: "", want: ""},
		{name: "relative", link: `</v2/a/tags/list?n=2&last=b>; rel="next"`, want: "https://r.example/v2/a/tags/list?n=2&last=b"},
		{name: "absolute", link: `<https://other.example/v2/a/tags/list?last=b>; rel="next"`, want: "https://other.example/v2/a/tags/list?last=b"},
		{name: "not next", link: `</v2/a/tags/list?last=b>; rel="prev"`, want: ""},
		{name: "malformed", link: `>/v2/a<; rel="next"`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}}
			if tt.link != "" {
				resp.Header.Set("Link", tt.link)
			}
			if got := nextLink(resp, cur); got != tt.want {
				t.Errorf("nextLink(%q) = %q, want %q", tt.link, got, tt.want)
			}
		})
	}
}
