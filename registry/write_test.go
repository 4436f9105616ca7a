package registry

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// writeEnv is a Server over a memStore under httptest.
type writeEnv struct {
	store  *memStore
	srv    *httptest.Server
	client *http.Client
}

func newWriteEnv(t *testing.T) *writeEnv {
	t.Helper()
	return newWriteEnvFor(t, newMemStore())
}

func newWriteEnvFor(t *testing.T, store *memStore) *writeEnv {
	t.Helper()
	return newWriteEnvBackend(t, store, store)
}

func newWriteEnvBackend(t *testing.T, store *memStore, backend ManifestHandler) *writeEnv {
	t.Helper()
	e := &writeEnv{store: store}
	e.srv = httptest.NewServer(New(backend))
	e.client = e.srv.Client()
	t.Cleanup(e.srv.Close)
	return e
}

// streamed hides a reader's type, so the client sends it chunked, without
// a Content-Length.
type streamed struct{ r io.Reader }

func (s streamed) Read(p []byte) (int, error) { return s.r.Read(p) }

// step is one request and what its response must be.
type step struct {
	name   string
	method string
	path   string            // {upload} and {id} are replaced
	header map[string]string // request headers
	body   []byte
	stream bool // send body chunked, with no Content-Length

	status  int
	code    string              // error code when status is an error
	headers map[string]string   // exact values; a trailing * matches a prefix
	multi   map[string][]string // all the values of a header
	absent  []string            // headers that must not be sent
	body2   []byte              // the response body, when not nil
	check   func(t *testing.T, resp *http.Response, body []byte)
}

func (e *writeEnv) send(t *testing.T, method, path string, header map[string]string, body []byte, stream bool) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		if stream {
			rd = streamed{rd}
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, out
}

// startSession POSTs a new upload to repo and returns its Location and id.
func (e *writeEnv) startSession(t *testing.T, repo string) (loc, id string) {
	t.Helper()
	resp, body := e.send(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, false)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: status %d (%s)", resp.StatusCode, body)
	}
	return resp.Header.Get("Location"), resp.Header.Get("Docker-Upload-UUID")
}

// run sends the steps in order, each a subtest, stopping at the first
// that fails.
func (e *writeEnv) run(t *testing.T, steps []step, vars map[string]string) {
	t.Helper()
	sub := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			header := map[string]string{}
			for k, v := range st.header {
				header[k] = sub(v)
			}
			resp, body := e.send(t, st.method, sub(st.path), header, st.body, st.stream)
			if st.code != "" {
				checkErrorBody(t, st.method, resp, body, st.status, st.code)
			} else if resp.StatusCode != st.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, st.status, body)
			}
			for k, want := range st.headers {
				want = sub(want)
				got := resp.Header.Get(k)
				if p, isPrefix := strings.CutSuffix(want, "*"); isPrefix {
					if !strings.HasPrefix(got, p) {
						t.Errorf("%s = %q, want prefix %q", k, got, p)
					}
				} else if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for k, want := range st.multi {
				if got := resp.Header.Values(k); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for _, k := range st.absent {
				if v := resp.Header.Values(k); len(v) != 0 {
					t.Errorf("%s = %q, want none", k, v)
				}
			}
			if st.method == http.MethodHead && len(body) != 0 {
				t.Errorf("HEAD response has a body: %q", body)
			}
			if st.body2 != nil && !bytes.Equal(body, st.body2) {
				t.Errorf("body = %.200q, want %.200q", body, st.body2)
			}
			if st.check != nil {
				st.check(t, resp, body)
			}
		})
		if !ok {
			return
		}
	}
}

func testBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/7)
	}
	return b
}

func sha512Of(b []byte) Digest {
	sum := sha512.Sum512(b)
	return Digest("sha512:" + hexString(sum[:]))
}

// manifest builds an image manifest referring to config and layers, with an
// optional subject and artifactType.
func manifest(config Descriptor, layers []Descriptor, subject *Descriptor, artifactType string, annotations map[string]string) []byte {
	if layers == nil {
		layers = []Descriptor{}
	}
	b, err := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType,omitempty"`
		Config        Descriptor        `json:"config"`
		Layers        []Descriptor      `json:"layers"`
		Subject       *Descriptor       `json:"subject,omitempty"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{2, mediaTypeOCIManifest, artifactType, config, layers, subject, annotations})
	if err != nil {
		panic(err)
	}
	return b
}

func TestWriteMethodNotAllowed(t *testing.T) {
	t.Parallel()

	e := newWriteEnv(t)
	loc, _ := e.startSession(t, "a")
	d := FromBytes(nil).String()
	tests := []struct {
		name   string
		method string
		path   string
	}{
		{name: "POST manifest", method: http.MethodPost, path: "/v2/a/manifests/latest"},
		{name: "PATCH manifest", method: http.MethodPatch, path: "/v2/a/manifests/latest"},
		{name: "POST blob", method: http.MethodPost, path: "/v2/a/blobs/" + d},
		{name: "PUT blob", method: http.MethodPut, path: "/v2/a/blobs/" + d},
		{name: "PATCH blob", method: http.MethodPatch, path: "/v2/a/blobs/" + d},
		{name: "PUT tags", method: http.MethodPut, path: "/v2/a/tags/list"},
		{name: "DELETE tags", method: http.MethodDelete, path: "/v2/a/tags/list"},
		{name: "PUT catalog", method: http.MethodPut, path: "/v2/_catalog"},
		{name: "POST referrers", method: http.MethodPost, path: "/v2/a/referrers/" + d},
		{name: "GET uploads", method: http.MethodGet, path: "/v2/a/blobs/uploads/"},
		{name: "PUT uploads", method: http.MethodPut, path: "/v2/a/blobs/uploads/?digest=" + d},
		{name: "PATCH uploads", method: http.MethodPatch, path: "/v2/a/blobs/uploads/"},
		{name: "DELETE uploads", method: http.MethodDelete, path: "/v2/a/blobs/uploads/"},
		{name: "POST upload", method: http.MethodPost, path: loc},
		{name: "OPTIONS upload", method: http.MethodOptions, path: loc},
		{name: "POST base", method: http.MethodPost, path: "/v2/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := e.send(t, tt.method, tt.path, nil, nil, false)
			checkErrorBody(t, tt.method, resp, body, http.StatusMethodNotAllowed, CodeUnsupported)
		})
	}
}

// TestWriteWithoutAbilities checks that a backend lacking an ability
// answers 405 UNSUPPORTED on its endpoints.
func TestWriteWithoutAbilities(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(New(manifestOnly{}))
	t.Cleanup(srv.Close)
	d := testSHA256
	tests := []struct {
		name   string
		method string
		path   string
	}{
		{name: "put manifest", method: http.MethodPut, path: "/v2/a/manifests/latest"},
		{name: "delete manifest", method: http.MethodDelete, path: "/v2/a/manifests/latest"},
		{name: "delete blob", method: http.MethodDelete, path: "/v2/a/blobs/" + d},
		{name: "start upload", method: http.MethodPost, path: "/v2/a/blobs/uploads/"},
		{name: "monolithic upload", method: http.MethodPost, path: "/v2/a/blobs/uploads/?digest=" + d},
		{name: "mount", method: http.MethodPost, path: "/v2/a/blobs/uploads/?mount=" + d + "&from=b"},
		{name: "upload status", method: http.MethodGet, path: "/v2/a/blobs/uploads/abc"},
		{name: "patch upload", method: http.MethodPatch, path: "/v2/a/blobs/uploads/abc"},
		{name: "put upload", method: http.MethodPut, path: "/v2/a/blobs/uploads/abc?digest=" + d},
		{name: "cancel upload", method: http.MethodDelete, path: "/v2/a/blobs/uploads/abc"},
		{name: "catalog", method: http.MethodGet, path: "/v2/_catalog"},
		{name: "referrers", method: http.MethodGet, path: "/v2/a/referrers/" + d},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			checkErrorBody(t, tt.method, resp, body, http.StatusMethodNotAllowed, CodeUnsupported)
		})
	}
}

// TestMountWithoutMounter checks that a backend that uploads but cannot
// mount answers a mount with an upload session.
func TestMountWithoutMounter(t *testing.T) {
	t.Parallel()

	store := newMemStore()
	data := []byte("blob")
	d := store.addBlob("src", data)
	e := newWriteEnvBackend(t, store, struct {
		ManifestHandler
		Uploader
	}{store, store})
	e.run(t, []step{
		{name: "mount", method: http.MethodPost, path: "/v2/a/blobs/uploads/?mount=" + d.String() + "&from=src", status: 202,
			headers: map[string]string{"Location": "/v2/a/blobs/uploads/*", "Range": "0-0"}, absent: []string{"Docker-Content-Digest"}},
	}, nil)
	if _, ok := store.lastMount(); ok {
		t.Error("MountBlob was called on a backend without the ability")
	}
}
