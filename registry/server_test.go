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
}

func newMemBlob(data []byte) *memBlob { return &memBlob{data: data, failAt: -1} }

func (b *memBlob) Size() int64    { return int64(len(b.data)) }
func (b *memBlob) Source() Source { return SourceStore }

func (b *memBlob) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	if b.openErr != nil {
		return nil, b.openErr
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
		if v := resp.Header.Get(h); v != "" {
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

func TestServerManifest(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	tests := []struct {
		name      string
		method    string
		path      string
		accept    []string
		status    int
		code      string
		mediaType string
		digest    Digest
		body      []byte
		ns        string
	}{
		{name: "GET by tag", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/latest",
			status: 200, mediaType: mediaTypeOCIManifest, digest: tr.manifestDigest, body: tr.manifestBody},
		{name: "GET by digest", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/" + tr.manifestDigest.String(),
			status: 200, mediaType: mediaTypeOCIManifest, digest: tr.manifestDigest, body: tr.manifestBody},
		{name: "GET index", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/multi",
			accept: []string{mediaTypeOCIIndex + ", " + mediaTypeOCIManifest + ";q=0.5"},
			status: 200, mediaType: mediaTypeOCIIndex, digest: tr.indexDigest},
		{name: "HEAD by tag", method: http.MethodHead, path: "/v2/library/ubuntu/manifests/latest",
			status: 200, mediaType: mediaTypeOCIManifest, digest: tr.manifestDigest, body: tr.manifestBody},
		{name: "HEAD by digest", method: http.MethodHead, path: "/v2/library/ubuntu/manifests/" + tr.manifestDigest.String(),
			status: 200, mediaType: mediaTypeOCIManifest, digest: tr.manifestDigest, body: tr.manifestBody},
		{name: "GET with ns", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/latest?ns=Docker.io",
			status: 200, mediaType: mediaTypeOCIManifest, digest: tr.manifestDigest, body: tr.manifestBody, ns: "docker.io"},
		{name: "unknown tag", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/nope", status: 404, code: CodeManifestUnknown},
		{name: "unknown tag HEAD", method: http.MethodHead, path: "/v2/library/ubuntu/manifests/nope", status: 404, code: CodeManifestUnknown},
		{name: "unknown digest", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/" + testSHA256, status: 404, code: CodeManifestUnknown},
		{name: "unknown repository", method: http.MethodGet, path: "/v2/library/debian/manifests/latest", status: 404, code: CodeManifestUnknown},
		{name: "bad digest", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/sha256:abc", status: 400, code: CodeDigestInvalid},
		{name: "upper-case digest", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/sha256:" + strings.ToUpper(tr.manifestDigest.Hex()), status: 400, code: CodeDigestInvalid},
		// A reference that is neither a tag nor a digest names nothing: the
		// released OCI conformance suite (v1.1.1) asks for .INVALID_MANIFEST_NAME
		// by GET and HEAD (pull) and by GET again before its manifest pushes.
		{name: "invalid tag", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/-latest", status: 404, code: CodeManifestUnknown},
		{name: "conformance v1.1.1 pull GET nonexistent", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/.INVALID_MANIFEST_NAME", status: 404, code: CodeManifestUnknown},
		{name: "conformance v1.1.1 pull HEAD nonexistent", method: http.MethodHead, path: "/v2/library/ubuntu/manifests/.INVALID_MANIFEST_NAME", status: 404, code: CodeManifestUnknown},
		{name: "conformance v1.1.1 push GET nonexistent", method: http.MethodGet, path: "/v2/private/conformance/manifests/.INVALID_MANIFEST_NAME", status: 404, code: CodeManifestUnknown},
		{name: "invalid name", method: http.MethodGet, path: "/v2/Library/ubuntu/manifests/latest", status: 400, code: CodeNameInvalid},
		{name: "invalid name HEAD", method: http.MethodHead, path: "/v2/Library/ubuntu/manifests/latest", status: 400, code: CodeNameInvalid},
		{name: "invalid ns", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/latest?ns=a/b", status: 400, code: CodeNameInvalid},
		{name: "outside the API", method: http.MethodGet, path: "/v1/library/ubuntu/manifests/latest", status: 404, code: CodeNameUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			resp, body := tr.do(t, tt.method, tt.path, http.Header{"Accept": tt.accept})
			if tt.code != "" {
				checkErrorBody(t, tt.method, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.mediaType {
				t.Errorf("Content-Type = %q, want %q", ct, tt.mediaType)
			}
			if d := resp.Header.Get("Docker-Content-Digest"); d != tt.digest.String() {
				t.Errorf("Docker-Content-Digest = %q, want %q", d, tt.digest)
			}
			if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
				t.Errorf("Docker-Distribution-API-Version = %q, want registry/2.0", v)
			}
			if ns := resp.Header.Get("OCI-Namespace"); ns != tt.ns {
				t.Errorf("OCI-Namespace = %q, want %q", ns, tt.ns)
			}
			want := tt.body
			if want == nil {
				mf := tr.backend.manifests["library/ubuntu@"+tt.digest.String()]
				want = mf.Body
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length = %q, want %d", cl, len(want))
			}
			if tt.method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD response has a body of %d bytes", len(body))
				}
			} else {
				if !bytes.Equal(body, want) {
					t.Errorf("body = %q, want %q", body, want)
				}
				if !tt.digest.Verify(body) {
					t.Errorf("body does not verify against %s", tt.digest)
				}
			}
		})
	}
}

func TestServerManifestRequest(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	tests := []struct {
		name   string
		method string
		path   string
		accept []string
		want   ManifestRequest
	}{
		{
			name: "GET by tag with accept", method: http.MethodGet, path: "/v2/library/ubuntu/manifests/latest?ns=docker.io",
			accept: []string{mediaTypeOCIIndex + ";q=1, " + mediaTypeOCIManifest, "application/json"},
			want: ManifestRequest{Repo: Repo{Name: "library/ubuntu", NS: "docker.io"}, Reference: "latest",
				Accept: []string{mediaTypeOCIIndex, mediaTypeOCIManifest, "application/json"}},
		},
		{
			name: "HEAD by digest", method: http.MethodHead, path: "/v2/library/ubuntu/manifests/" + tr.manifestDigest.String(),
			want: ManifestRequest{Repo: Repo{Name: "library/ubuntu"}, Reference: tr.manifestDigest.String(),
				Digest: tr.manifestDigest, Head: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: it reads the backend's last request.
			resp, _ := tr.do(t, tt.method, tt.path, http.Header{"Accept": tt.accept})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			got, ok := tr.backend.lastRequest().(ManifestRequest)
			if !ok {
				t.Fatalf("last request = %#v, want a ManifestRequest", tr.backend.lastRequest())
			}
			if !sameRepo(got.Repo, tt.want.Repo) || got.Reference != tt.want.Reference || got.Digest != tt.want.Digest ||
				got.Head != tt.want.Head || strings.Join(got.Accept, "|") != strings.Join(tt.want.Accept, "|") {
				t.Errorf("request = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestServerBlob(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)
	size := int64(len(tr.blobData))
	blobPath := "/v2/library/ubuntu/blobs/" + tr.blobDigest.String()

	tests := []struct {
		name         string
		method       string
		path         string
		rangeHdr     string
		status       int
		code         string
		start, end   int64 // expected bytes, inclusive
		contentRange string
		empty        bool
	}{
		{name: "GET full", method: http.MethodGet, path: blobPath, status: 200, start: 0, end: size - 1},
		{name: "HEAD full", method: http.MethodHead, path: blobPath, status: 200, start: 0, end: size - 1},
		{name: "GET open range", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=100-",
			status: 206, start: 100, end: size - 1, contentRange: "bytes 100-999/1000"},
		{name: "GET closed range", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=100-199",
			status: 206, start: 100, end: 199, contentRange: "bytes 100-199/1000"},
		{name: "GET range clamped", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=990-5000",
			status: 206, start: 990, end: 999, contentRange: "bytes 990-999/1000"},
		{name: "GET suffix range", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=-10",
			status: 206, start: 990, end: 999, contentRange: "bytes 990-999/1000"},
		{name: "GET last byte", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=999-",
			status: 206, start: 999, end: 999, contentRange: "bytes 999-999/1000"},
		{name: "HEAD range", method: http.MethodHead, path: blobPath, rangeHdr: "bytes=100-199",
			status: 206, start: 100, end: 199, contentRange: "bytes 100-199/1000"},
		{name: "GET with ns", method: http.MethodGet, path: blobPath + "?ns=docker.io", status: 200, start: 0, end: size - 1},
		{name: "GET empty blob", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + tr.emptyDigest.String(), status: 200, empty: true},
		{name: "range beyond size", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=1000-", status: 416, code: CodeRangeInvalid},
		{name: "range beyond size HEAD", method: http.MethodHead, path: blobPath, rangeHdr: "bytes=5000-6000", status: 416, code: CodeRangeInvalid},
		{name: "range reversed", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=200-100", status: 416, code: CodeRangeInvalid},
		{name: "range multiple", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=0-1,3-4", status: 416, code: CodeRangeInvalid},
		{name: "range garbage", method: http.MethodGet, path: blobPath, rangeHdr: "pages=1", status: 416, code: CodeRangeInvalid},
		{name: "range on empty blob", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + tr.emptyDigest.String(), rangeHdr: "bytes=0-", status: 416, code: CodeRangeInvalid},
		{name: "unknown blob", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + testSHA512, status: 404, code: CodeBlobUnknown},
		{name: "unknown blob HEAD", method: http.MethodHead, path: "/v2/library/ubuntu/blobs/" + testSHA512, status: 404, code: CodeBlobUnknown},
		{name: "blob of another repository", method: http.MethodGet, path: "/v2/library/debian/blobs/" + tr.blobDigest.String(), status: 404, code: CodeBlobUnknown},
		{name: "bad digest", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/sha256:1234", status: 400, code: CodeDigestInvalid},
		{name: "unknown algorithm", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: CodeDigestInvalid},
		{name: "invalid name", method: http.MethodGet, path: "/v2/library/UBUNTU/blobs/" + tr.blobDigest.String(), status: 400, code: CodeNameInvalid},
		{name: "open fails", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + tr.openErrDigest.String(), status: 500, code: CodeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var h http.Header
			if tt.rangeHdr != "" {
				h = http.Header{"Range": {tt.rangeHdr}}
			}
			resp, body := tr.do(t, tt.method, tt.path, h)
			if tt.code != "" {
				checkErrorBody(t, tt.method, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			var want []byte
			if !tt.empty {
				want = tr.blobData[tt.start : tt.end+1]
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length = %q, want %d", cl, len(want))
			}
			if cr := resp.Header.Get("Content-Range"); cr != tt.contentRange {
				t.Errorf("Content-Range = %q, want %q", cr, tt.contentRange)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type = %q, want application/octet-stream", ct)
			}
			if ar := resp.Header.Get("Accept-Ranges"); ar != "bytes" {
				t.Errorf("Accept-Ranges = %q, want bytes", ar)
			}
			wantDigest := tr.blobDigest
			if tt.empty {
				wantDigest = tr.emptyDigest
			}
			if d := resp.Header.Get("Docker-Content-Digest"); d != wantDigest.String() {
				t.Errorf("Docker-Content-Digest = %q, want %q", d, wantDigest)
			}
			if tt.method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD response has a body of %d bytes", len(body))
				}
				return
			}
			if !bytes.Equal(body, want) {
				t.Errorf("body is %d bytes, want bytes %d-%d (%d bytes)", len(body), tt.start, tt.end, len(want))
			}
			if tt.status == http.StatusOK && !wantDigest.Verify(body) {
				t.Errorf("body does not verify against %s", wantDigest)
			}
		})
	}
}

func TestServerBlobBrokenStream(t *testing.T) {
	t.Parallel()

	var (
		mu    sync.Mutex
		infos []RequestInfo
	)
	tr := newTestRegistry(t, WithObserver(func(ri RequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, ri)
	}))
	size := len(tr.brokenData)
	failAt := size / 2

	tests := []struct {
		name     string
		rangeHdr string
		status   int
		want     int // bytes the response announces
	}{
		{name: "full", status: http.StatusOK, want: size},
		{name: "range before failure", rangeHdr: "bytes=10-", status: http.StatusPartialContent, want: size - 10},
		{name: "range after failure", rangeHdr: "bytes=" + strconv.Itoa(failAt+10) + "-", status: http.StatusPartialContent, want: size - failAt - 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
				tr.srv.URL+"/v2/library/ubuntu/blobs/"+tr.brokenDigest.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rangeHdr != "" {
				req.Header.Set("Range", tt.rangeHdr)
			}
			resp, err := tr.client.Do(req)
			if err != nil {
				// The connection was cut before the headers: also broken.
				t.Logf("request failed before the headers: %v", err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if resp.ContentLength != int64(tt.want) {
				t.Fatalf("Content-Length = %d, want %d", resp.ContentLength, tt.want)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil && len(body) == tt.want {
				t.Fatalf("read %d bytes and a clean EOF from a blob whose reader failed", len(body))
			}
			if err == nil {
				t.Fatalf("short body (%d of %d bytes) ended with a clean EOF", len(body), tt.want)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("body read failed with %v", err)
			}
			if len(body) >= tt.want {
				t.Errorf("read %d bytes, want fewer than %d", len(body), tt.want)
			}
		})
	}

	mu.Lock()
	defer mu.Unlock()
	for _, ri := range infos {
		if ri.Kind != KindBlob {
			t.Errorf("observed request of kind %v, want blob", ri.Kind)
		}
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

func TestServerTags(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	tests := []struct {
		name   string
		method string
		query  string
		path   string // default: the ubuntu tag list
		status int
		code   string
		tags   []string
		link   string
		ns     string
	}{
		{name: "all", query: "", status: 200, tags: []string{"a", "b", "c", "d", "e"}},
		{name: "first page", query: "?n=2", status: 200, tags: []string{"a", "b"},
			link: `</v2/library/ubuntu/tags/list?n=2&last=b>; rel="next"`},
		{name: "second page", query: "?n=2&last=b", status: 200, tags: []string{"c", "d"},
			link: `</v2/library/ubuntu/tags/list?n=2&last=d>; rel="next"`},
		{name: "last page", query: "?n=2&last=d", status: 200, tags: []string{"e"}},
		{name: "exact last page", query: "?n=5", status: 200, tags: []string{"a", "b", "c", "d", "e"}},
		{name: "last between tags", query: "?n=2&last=bb", status: 200, tags: []string{"c", "d"},
			link: `</v2/library/ubuntu/tags/list?n=2&last=d>; rel="next"`},
		{name: "last before all", query: "?last=0", status: 200, tags: []string{"a", "b", "c", "d", "e"}},
		{name: "last after all", query: "?n=2&last=z", status: 200, tags: []string{}},
		{name: "last without n", query: "?last=c", status: 200, tags: []string{"d", "e"}},
		{name: "n zero", query: "?n=0", status: 200, tags: []string{}},
		{name: "with ns", query: "?n=1&ns=docker.io", status: 200, tags: []string{"a"}, ns: "docker.io",
			link: `</v2/library/ubuntu/tags/list?n=1&last=a&ns=docker.io>; rel="next"`},
		{name: "HEAD", method: http.MethodHead, query: "?n=1", status: 200,
			link: `</v2/library/ubuntu/tags/list?n=1&last=a>; rel="next"`},
		{name: "bad n", query: "?n=x", status: 400, code: CodeUnsupported},
		{name: "negative n", query: "?n=-1", status: 400, code: CodeUnsupported},
		{name: "unknown repository", path: "/v2/library/debian/tags/list", status: 404, code: CodeNameUnknown},
		{name: "invalid name", path: "/v2/library/Debian/tags/list", status: 400, code: CodeNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			path := tt.path
			if path == "" {
				path = "/v2/library/ubuntu/tags/list"
			}
			resp, body := tr.do(t, method, path+tt.query, nil)
			if tt.code != "" {
				checkErrorBody(t, method, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			if link := resp.Header.Get("Link"); link != tt.link {
				t.Errorf("Link = %q, want %q", link, tt.link)
			}
			if ns := resp.Header.Get("OCI-Namespace"); ns != tt.ns {
				t.Errorf("OCI-Namespace = %q, want %q", ns, tt.ns)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD response has a body: %q", body)
				}
				return
			}
			var got struct {
				Name string    `json:"name"`
				Tags *[]string `json:"tags"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if got.Name != "library/ubuntu" {
				t.Errorf("name = %q, want library/ubuntu", got.Name)
			}
			if got.Tags == nil {
				t.Fatalf("tags is null or missing in %s, want a list", body)
			}
			if strings.Join(*got.Tags, ",") != strings.Join(tt.tags, ",") {
				t.Errorf("tags = %q, want %q", *got.Tags, tt.tags)
			}
		})
	}
}

// TestServerTagsFollowLinks walks the pages the way a client does, by the
// Link header, and gets every tag exactly once.
func TestServerTagsFollowLinks(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	for _, n := range []int{1, 2, 3, 4, 5, 6} {
		t.Run("n="+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()

			var all []string
			next := "/v2/library/ubuntu/tags/list?n=" + strconv.Itoa(n)
			for pages := 0; next != ""; pages++ {
				if pages > 10 {
					t.Fatal("too many pages")
				}
				resp, body := tr.do(t, http.MethodGet, next, nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: status %d", next, resp.StatusCode)
				}
				var page struct{ Tags []string }
				if err := json.Unmarshal(body, &page); err != nil {
					t.Fatal(err)
				}
				all = append(all, page.Tags...)
				next = ""
				if link := resp.Header.Get("Link"); link != "" {
					u, rel, ok := strings.Cut(link, ">; ")
					if !ok || rel != `rel="next"` || !strings.HasPrefix(u, "<") {
						t.Fatalf("malformed Link %q", link)
					}
					next = u[1:]
				}
			}
			if got := strings.Join(all, ","); got != "a,b,c,d,e" {
				t.Errorf("tags = %s, want a,b,c,d,e", got)
			}
		})
	}
}

func TestServerManifestOnlyBackend(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(New(manifestOnly{}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name   string
		path   string
		status int
		code   string
	}{
		{name: "manifest", path: "/v2/a/manifests/latest", status: 404, code: CodeManifestUnknown},
		{name: "blob", path: "/v2/a/blobs/" + testSHA256, status: 404, code: CodeBlobUnknown},
		{name: "tags", path: "/v2/a/tags/list", status: 404, code: CodeNameUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			resp, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			checkErrorBody(t, http.MethodGet, resp, body, tt.status, tt.code)
		})
	}
}

func TestParseAccept(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		values []string
		want   []string
	}{
		{name: "none", values: nil, want: nil},
		{name: "one", values: []string{mediaTypeOCIManifest}, want: []string{mediaTypeOCIManifest}},
		{name: "list with parameters", values: []string{mediaTypeOCIIndex + "; q=0.9 , " + mediaTypeOCIManifest},
			want: []string{mediaTypeOCIIndex, mediaTypeOCIManifest}},
		{name: "several headers", values: []string{"a/b", "c/d,e/f"}, want: []string{"a/b", "c/d", "e/f"}},
		{name: "empty parts", values: []string{" , ;q=1,a/b,"}, want: []string{"a/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Accept", v)
			}
			got := ParseAccept(h)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("ParseAccept = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPaginate(t *testing.T) {
	t.Parallel()

	all := []string{"a", "b", "c"}
	tests := []struct {
		name string
		all  []string
		n    int
		last string
		want []string
		more bool
	}{
		{name: "no limit", all: all, n: -1, want: []string{"a", "b", "c"}},
		{name: "limit", all: all, n: 2, want: []string{"a", "b"}, more: true},
		{name: "limit equals length", all: all, n: 3, want: []string{"a", "b", "c"}},
		{name: "limit after last", all: all, n: 1, last: "a", want: []string{"b"}, more: true},
		{name: "last is the end", all: all, n: 1, last: "c", want: []string{}},
		{name: "last not present", all: all, n: -1, last: "bb", want: []string{"c"}},
		{name: "zero", all: all, n: 0, want: []string{}, more: true},
		{name: "nil list", all: nil, n: -1, want: []string{}},
		{name: "nil list with last", all: nil, n: 5, last: "x", want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			page, more := Paginate(tt.all, tt.n, tt.last)
			if page == nil {
				t.Error("page is nil, want an empty list")
			}
			if strings.Join(page, ",") != strings.Join(tt.want, ",") || more != tt.more {
				t.Errorf("Paginate = %q, %v; want %q, %v", page, more, tt.want, tt.more)
			}
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
