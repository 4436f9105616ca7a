package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const (
	mediaTypeOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex    = "application/vnd.oci.image.index.v1+json"
)

// memBackend is an in-memory backend: manifests by repository and
// reference, blobs by repository and digest, and tags.
type memBackend struct {
	manifests map[string]*Manifest // "<name>@<tag or digest>"
	blobs     map[string]*memBlob  // "<name>@<digest>"
	tags      map[string][]string  // "<name>", sorted

	mu       sync.Mutex
	requests []any
}

func newMemBackend() *memBackend {
	return &memBackend{manifests: map[string]*Manifest{}, blobs: map[string]*memBlob{}, tags: map[string][]string{}}
}

func (m *memBackend) addManifest(name, tag, mediaType string, body []byte) Digest {
	d := FromBytes(body)
	mf := &Manifest{MediaType: mediaType, Digest: d, Body: body, Source: SourceStore}
	m.manifests[name+"@"+d.String()] = mf
	if tag != "" {
		m.manifests[name+"@"+tag] = mf
	}
	return d
}

func (m *memBackend) addBlob(name string, b *memBlob) Digest {
	d := FromBytes(b.data)
	m.blobs[name+"@"+d.String()] = b
	return d
}

func (m *memBackend) record(req any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, req)
}

func (m *memBackend) lastRequest() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) == 0 {
		return nil
	}
	return m.requests[len(m.requests)-1]
}

func (m *memBackend) GetManifest(_ context.Context, req ManifestRequest) (*Manifest, error) {
	m.record(req)
	mf, ok := m.manifests[req.Repo.Name+"@"+req.Reference]
	if !ok {
		return nil, ErrManifestUnknown(req.Reference)
	}
	return mf, nil
}

func (m *memBackend) GetBlob(_ context.Context, req BlobRequest) (Blob, error) {
	m.record(req)
	b, ok := m.blobs[req.Repo.Name+"@"+req.Digest.String()]
	if !ok {
		return nil, ErrBlobUnknown(req.Digest.String())
	}
	return b, nil
}

func (m *memBackend) ListTags(_ context.Context, repo Repo) ([]string, error) {
	m.record(repo)
	tags, ok := m.tags[repo.Name]
	if !ok {
		return nil, ErrNameUnknown(repo.Name)
	}
	return tags, nil
}

// memBlob is a blob held in memory. When failAt >= 0 its reader returns an
// error once it has delivered the bytes before offset failAt.
type memBlob struct {
	data    []byte
	failAt  int64
	openErr error
	// open, when set, gives the reader from off instead.
	open func(off int64) io.ReadCloser
}

func newMemBlob(data []byte) *memBlob { return &memBlob{data: data, failAt: -1} }

func (b *memBlob) Size() int64    { return int64(len(b.data)) }
func (b *memBlob) Source() Source { return SourceStore }

func (b *memBlob) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	if b.openErr != nil {
		return nil, b.openErr
	}
	if b.open != nil {
		return b.open(off), nil
	}
	var r io.Reader = bytes.NewReader(b.data[off:])
	if b.failAt >= 0 {
		r = io.MultiReader(bytes.NewReader(b.data[off:max(off, b.failAt)]), errReader{errors.New("fill did not verify")})
	}
	return io.NopCloser(r), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// manifestOnly is a backend with no blob or tag abilities.
type manifestOnly struct{}

func (manifestOnly) GetManifest(_ context.Context, req ManifestRequest) (*Manifest, error) {
	return nil, ErrManifestUnknown(req.Reference)
}

// testRegistry holds a Server for one test under httptest.
type testRegistry struct {
	backend *memBackend
	srv     *httptest.Server
	client  *http.Client

	manifestDigest Digest
	manifestBody   []byte
	indexDigest    Digest
	blobDigest     Digest
	blobData       []byte
	emptyDigest    Digest
	brokenDigest   Digest
	brokenData     []byte
	openErrDigest  Digest
}

func newTestRegistry(t *testing.T, opts ...Option) *testRegistry {
	t.Helper()

	tr := &testRegistry{backend: newMemBackend()}
	be := tr.backend
	tr.manifestBody = []byte(`{"schemaVersion":2,"mediaType":"` + mediaTypeOCIManifest + `"}`)
	tr.manifestDigest = be.addManifest("library/ubuntu", "latest", mediaTypeOCIManifest, tr.manifestBody)
	tr.indexDigest = be.addManifest("library/ubuntu", "multi", mediaTypeOCIIndex, []byte(`{"schemaVersion":2,"manifests":[]}`))

	tr.blobData = make([]byte, 1000)
	for i := range tr.blobData {
		tr.blobData[i] = byte(i * 7)
	}
	tr.blobDigest = be.addBlob("library/ubuntu", newMemBlob(tr.blobData))
	tr.emptyDigest = be.addBlob("library/ubuntu", newMemBlob(nil))

	// Large enough that the first bytes are flushed before the failure.
	tr.brokenData = bytes.Repeat([]byte("broken stream "), 64<<10)
	tr.brokenDigest = be.addBlob("library/ubuntu", &memBlob{data: tr.brokenData, failAt: int64(len(tr.brokenData) / 2)})
	openErrData := []byte("cannot open")
	tr.openErrDigest = be.addBlob("library/ubuntu", &memBlob{data: openErrData, failAt: -1, openErr: errors.New("disk on fire")})

	be.tags["library/ubuntu"] = []string{"a", "b", "c", "d", "e"}

	tr.srv = httptest.NewServer(New(be, opts...))
	tr.client = tr.srv.Client()
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *testRegistry) do(t *testing.T, method, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()

	req, err := http.NewRequestWithContext(t.Context(), method, tr.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := tr.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, body
}

// checkErrorBody asserts that resp is an error response in exactly the
// spec's shape, {"errors":[{"code":…,"message":…}]}, with the given code.
func checkErrorBody(t *testing.T, method string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()

	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	for _, h := range []string{"Content-Range", "Docker-Content-Digest"} {
		v := resp.Header.Get(h)
		if h == "Content-Range" && status == http.StatusRequestedRangeNotSatisfiable {
			if v != "" && !strings.HasPrefix(v, "bytes */") { // a blob range's 416 names the size
				t.Errorf("416 answer has Content-Range %q, want bytes */<size>", v)
			}
			continue
		}
		if v != "" {
			t.Errorf("error response has %s: %q", h, v)
		}
	}
	if method == http.MethodHead {
		if len(body) != 0 {
			t.Errorf("HEAD error response has a body: %q", body)
		}
		return
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length = %q, body is %d bytes", cl, len(body))
	}
	var raw map[string][]map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("error body %s is not {\"errors\":[…]}: %v", body, err)
	}
	if len(raw) != 1 || len(raw["errors"]) != 1 {
		t.Fatalf("error body %s: want exactly one key \"errors\" with one entry", body)
	}
	entry := raw["errors"][0]
	if len(entry) != 2 {
		t.Errorf("error entry %v: want exactly code and message", entry)
	}
	if got, _ := entry["code"].(string); got != code {
		t.Errorf("code = %v, want %s", entry["code"], code)
	}
	if msg, _ := entry["message"].(string); msg == "" {
		t.Errorf("message = %v, want a non-empty string", entry["message"])
	}
}

func TestServerBase(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	tests := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{name: "GET with slash", method: http.MethodGet, path: "/v2/", body: "{}"},
		{name: "GET without slash", method: http.MethodGet, path: "/v2", body: "{}"},
		{name: "HEAD", method: http.MethodHead, path: "/v2/", body: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			resp, body := tr.do(t, tt.method, tt.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if string(body) != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
				t.Errorf("Docker-Distribution-API-Version = %q, want registry/2.0", v)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if cl := resp.Header.Get("Content-Length"); cl != "2" {
				t.Errorf("Content-Length = %q, want 2", cl)
			}
		})
	}
}

func TestServerUnsupportedMethods(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	paths := []struct {
		name string
		path string
	}{
		{name: "base", path: "/v2/"},
		{name: "manifest", path: "/v2/library/ubuntu/manifests/latest"},
		{name: "blob", path: "/v2/library/ubuntu/blobs/" + tr.blobDigest.String()},
		{name: "tags", path: "/v2/library/ubuntu/tags/list"},
		{name: "uploads", path: "/v2/library/ubuntu/blobs/uploads/"},
		{name: "upload", path: "/v2/library/ubuntu/blobs/uploads/abc"},
	}
	methods := []string{http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodPatch}
	for _, p := range paths {
		for _, m := range methods {
			t.Run(p.name+" "+m, func(t *testing.T) {
				t.Parallel()

				resp, body := tr.do(t, m, p.path, nil)
				checkErrorBody(t, m, resp, body, http.StatusMethodNotAllowed, CodeUnsupported)
			})
		}
	}
}

func TestServerUnsupportedEndpoints(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	tests := []struct {
		name   string
		method string
		path   string
	}{
		{name: "catalog", method: http.MethodGet, path: "/v2/_catalog"},
		{name: "referrers", method: http.MethodGet, path: "/v2/library/ubuntu/referrers/" + tr.manifestDigest.String()},
		{name: "upload status", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/uploads/abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			resp, body := tr.do(t, tt.method, tt.path, nil)
			checkErrorBody(t, tt.method, resp, body, http.StatusMethodNotAllowed, CodeUnsupported)
		})
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		remote string
		want   string
	}{
		{name: "ipv4", remote: "10.0.0.1:1234", want: "10.0.0.1"},
		{name: "ipv6", remote: "[::1]:1234", want: "::1"},
		{name: "no port", remote: "10.0.0.1", want: "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &http.Request{RemoteAddr: tt.remote}
			if got := ClientIP(r); got != tt.want {
				t.Errorf("ClientIP(%q) = %q, want %q", tt.remote, got, tt.want)
			}
		})
	}
}
