package registry

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/internal/oci"
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

func cr(start, end int) map[string]string {
	return map[string]string{"Content-Range": strconv.Itoa(start) + "-" + strconv.Itoa(end)}
}

func TestUploadStart(t *testing.T) {
	t.Parallel()

	data := testBytes(700)
	d := FromBytes(data)
	d512 := sha512Of(data)
	empty := FromBytes(nil)
	other := FromBytes([]byte("not the data"))
	srcData := []byte("a layer in another repository")
	src := FromBytes(srcData)

	tests := []struct {
		name   string
		path   string
		body   []byte
		stream bool
		status int
		code   string
		header map[string]string
		absent []string
		// after checks the store once the request is done.
		after func(t *testing.T, e *writeEnv, resp *http.Response)
	}{
		{
			name: "session", path: "/v2/a/b/blobs/uploads/", status: 202,
			header: map[string]string{"Location": "/v2/a/b/blobs/uploads/*", "Range": "0-0", "Content-Length": "0"},
			absent: []string{"Docker-Content-Digest"},
			after: func(t *testing.T, e *writeEnv, resp *http.Response) {
				loc, id := resp.Header.Get("Location"), resp.Header.Get("Docker-Upload-UUID")
				if id == "" || loc != "/v2/a/b/blobs/uploads/"+id {
					t.Fatalf("Location %q, Docker-Upload-UUID %q", loc, id)
				}
				if !uploadIDRE.MatchString(id) {
					t.Errorf("upload id %q does not parse as an upload id", id)
				}
				r, _ := e.send(t, http.MethodGet, loc, nil, nil, false)
				if r.StatusCode != http.StatusNoContent {
					t.Errorf("GET %s: status %d, want 204", loc, r.StatusCode)
				}
			},
		},
		{
			name: "session ignores a body", path: "/v2/a/b/blobs/uploads/", body: data, status: 202,
			header: map[string]string{"Range": "0-0"},
		},
		{
			name: "session with ns", path: "/v2/a/b/blobs/uploads/?ns=docker.io", status: 202,
			header: map[string]string{"Location": "/v2/a/b/blobs/uploads/*", "OCI-Namespace": "docker.io"},
			after: func(t *testing.T, _ *writeEnv, resp *http.Response) {
				if loc := resp.Header.Get("Location"); strings.Contains(loc, "?") || strings.Contains(loc, "ns=") {
					t.Errorf("Location %q carries a query", loc)
				}
			},
		},
		{
			name: "monolithic", path: "/v2/a/b/blobs/uploads/?digest=" + d.String(), body: data, status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + d.String(), "Docker-Content-Digest": d.String(), "Content-Length": "0"},
			absent: []string{"Docker-Upload-UUID"},
			after:  wantBlob("a/b", d, data),
		},
		{
			name: "monolithic streamed", path: "/v2/a/b/blobs/uploads/?digest=" + d.String(), body: data, stream: true, status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + d.String(), "Docker-Content-Digest": d.String()},
			after:  wantBlob("a/b", d, data),
		},
		{
			name: "monolithic sha512", path: "/v2/a/b/blobs/uploads/?digest=" + d512.String(), body: data, status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + d512.String(), "Docker-Content-Digest": d512.String()},
			after:  wantBlob("a/b", d512, data),
		},
		{
			name: "monolithic empty blob", path: "/v2/a/b/blobs/uploads/?digest=" + empty.String(), status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + empty.String(), "Docker-Content-Digest": empty.String()},
			after:  wantBlob("a/b", empty, []byte{}),
		},
		{
			name: "monolithic wrong digest", path: "/v2/a/b/blobs/uploads/?digest=" + other.String(), body: data,
			status: 400, code: CodeDigestInvalid, absent: []string{"Location"},
			after: noBlob("a/b", other),
		},
		{
			name: "invalid digest", path: "/v2/a/b/blobs/uploads/?digest=sha256:xyz", body: data,
			status: 400, code: CodeDigestInvalid,
		},
		{
			name: "empty digest", path: "/v2/a/b/blobs/uploads/?digest=", body: data,
			status: 400, code: CodeDigestInvalid,
		},
		{
			name: "mount from", path: "/v2/a/b/blobs/uploads/?mount=" + src.String() + "&from=src/repo", status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + src.String(), "Docker-Content-Digest": src.String()},
			after: func(t *testing.T, e *writeEnv, resp *http.Response) {
				wantMount(t, e, memMount{repo: "a/b", from: "src/repo", digest: src})
				wantBlob("a/b", src, srcData)(t, e, resp)
			},
		},
		{
			name: "mount anonymous", path: "/v2/a/b/blobs/uploads/?mount=" + src.String(), status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + src.String(), "Docker-Content-Digest": src.String()},
			after: func(t *testing.T, e *writeEnv, resp *http.Response) {
				wantMount(t, e, memMount{repo: "a/b", from: "", digest: src})
				wantBlob("a/b", src, srcData)(t, e, resp)
			},
		},
		{
			name: "mount from a repository without the blob", path: "/v2/a/b/blobs/uploads/?mount=" + src.String() + "&from=elsewhere", status: 202,
			header: map[string]string{"Location": "/v2/a/b/blobs/uploads/*", "Range": "0-0"},
			absent: []string{"Docker-Content-Digest"},
			after: func(t *testing.T, e *writeEnv, resp *http.Response) {
				wantMount(t, e, memMount{repo: "a/b", from: "elsewhere", digest: src})
				noBlob("a/b", src)(t, e, resp)
			},
		},
		{
			name: "mount of an unknown blob", path: "/v2/a/b/blobs/uploads/?mount=" + other.String(), status: 202,
			header: map[string]string{"Location": "/v2/a/b/blobs/uploads/*", "Range": "0-0"},
		},
		{
			name: "mount fallback to monolithic", path: "/v2/a/b/blobs/uploads/?mount=" + d.String() + "&from=src/repo&digest=" + d.String(), body: data, status: 201,
			header: map[string]string{"Location": "/v2/a/b/blobs/" + d.String(), "Docker-Content-Digest": d.String()},
			after:  wantBlob("a/b", d, data),
		},
		{
			name: "mount invalid digest", path: "/v2/a/b/blobs/uploads/?mount=sha256:short&from=src/repo",
			status: 400, code: CodeDigestInvalid,
		},
		{
			name: "mount invalid from", path: "/v2/a/b/blobs/uploads/?mount=" + src.String() + "&from=Src/Repo",
			status: 400, code: CodeNameInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWriteEnv(t)
			e.store.addBlob("src/repo", srcData)

			resp, body := e.send(t, http.MethodPost, tt.path, nil, tt.body, tt.stream)
			if tt.code != "" {
				checkErrorBody(t, http.MethodPost, resp, body, tt.status, tt.code)
			} else if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			} else if len(body) != 0 {
				t.Errorf("body = %q, want none", body)
			}
			for k, want := range tt.header {
				got := resp.Header.Get(k)
				if p, isPrefix := strings.CutSuffix(want, "*"); isPrefix {
					if !strings.HasPrefix(got, p) || len(got) == len(p) {
						t.Errorf("%s = %q, want %q followed by more", k, got, p)
					}
				} else if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for _, k := range tt.absent {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("%s = %q, want none", k, v)
				}
			}
			if tt.status != http.StatusAccepted {
				// Nothing is left behind: a finished or failed
				// monolithic push ends its session.
				if n := e.store.uploadCount(); n != 0 {
					t.Errorf("%d upload sessions left open", n)
				}
			}
			if tt.after != nil {
				tt.after(t, e, resp)
			}
		})
	}
}

func wantBlob(repo string, d Digest, data []byte) func(*testing.T, *writeEnv, *http.Response) {
	return func(t *testing.T, e *writeEnv, _ *http.Response) {
		t.Helper()
		got, ok := e.store.blob(repo, d)
		if !ok {
			t.Fatalf("blob %s is not in %s", d, repo)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("blob %s holds %d bytes, want %d", d, len(got), len(data))
		}
		resp, body := e.send(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil, false)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("GET blob: status %d, %d bytes", resp.StatusCode, len(body))
		}
	}
}

func noBlob(repo string, d Digest) func(*testing.T, *writeEnv, *http.Response) {
	return func(t *testing.T, e *writeEnv, _ *http.Response) {
		t.Helper()
		if _, ok := e.store.blob(repo, d); ok {
			t.Errorf("blob %s is in %s", d, repo)
		}
	}
}

func wantMount(t *testing.T, e *writeEnv, want memMount) {
	t.Helper()
	got, ok := e.store.lastMount()
	if !ok || got != want {
		t.Errorf("MountBlob call = %+v (%v), want %+v", got, ok, want)
	}
}

func TestUploadSession(t *testing.T) {
	t.Parallel()

	data := testBytes(300)
	d := FromBytes(data)
	d512 := sha512Of(data)
	empty := FromBytes(nil)
	other := FromBytes([]byte("other"))
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	with := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	session := func(rng string) map[string]string {
		return map[string]string{"Location": "{upload}", "Docker-Upload-UUID": "{id}", "Range": rng}
	}
	status := func(rng string) step {
		return step{name: "status " + rng, method: http.MethodGet, path: "{upload}", status: 204,
			headers: session(rng), body2: []byte{}}
	}
	created := func(dg Digest) map[string]string {
		return map[string]string{"Location": "/v2/a/b/blobs/" + dg.String(), "Docker-Content-Digest": dg.String(), "Content-Length": "0"}
	}
	getBlob := func(dg Digest, b []byte) step {
		return step{name: "get blob", method: http.MethodGet, path: "/v2/a/b/blobs/" + dg.String(), status: 200, body2: b}
	}
	gone := step{name: "session gone", method: http.MethodGet, path: "{upload}", status: 404, code: CodeBlobUploadUnknown}

	tests := []struct {
		name  string
		steps []step
	}{
		{name: "chunks in order", steps: []step{
			status("0-0"),
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: with(octet, cr(0, 99)), body: data[:100],
				status: 202, headers: with(session("0-99"), map[string]string{"Content-Length": "0"}), body2: []byte{}},
			{name: "chunk 2", method: http.MethodPatch, path: "{upload}", header: cr(100, 199), body: data[100:200],
				status: 202, headers: session("0-199")},
			{name: "chunk 3", method: http.MethodPatch, path: "{upload}", header: cr(200, 299), body: data[200:],
				status: 202, headers: session("0-299")},
			status("0-299"),
			{name: "close", method: http.MethodPut, path: "{upload}?digest=" + d.String(), status: 201, headers: created(d), body2: []byte{}},
			getBlob(d, data),
			gone,
		}},
		{name: "out of order chunk", steps: []step{
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: cr(0, 99), body: data[:100], status: 202, headers: session("0-99")},
			{name: "skips ahead", method: http.MethodPatch, path: "{upload}", header: cr(200, 299), body: data[200:],
				status: 416, code: CodeBlobUploadInvalid, headers: session("0-99")},
			{name: "repeats", method: http.MethodPatch, path: "{upload}", header: cr(0, 99), body: data[:100],
				status: 416, code: CodeBlobUploadInvalid, headers: session("0-99")},
			status("0-99"),
			{name: "chunk 2", method: http.MethodPatch, path: "{upload}", header: cr(100, 199), body: data[100:200], status: 202, headers: session("0-199")},
			{name: "last chunk in the PUT", method: http.MethodPut, path: "{upload}?digest=" + d.String(), header: cr(200, 299), body: data[200:],
				status: 201, headers: created(d)},
			getBlob(d, data),
			gone,
		}},
		{name: "out of order first chunk", steps: []step{
			{name: "skips ahead", method: http.MethodPatch, path: "{upload}", header: cr(100, 199), body: data[100:200],
				status: 416, code: CodeBlobUploadInvalid, headers: session("0-0")},
			status("0-0"),
		}},
		{name: "out of order PUT", steps: []step{
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: cr(0, 99), body: data[:100], status: 202},
			{name: "PUT skips ahead", method: http.MethodPut, path: "{upload}?digest=" + d.String(), header: cr(150, 299), body: data[150:],
				status: 416, code: CodeBlobUploadInvalid, headers: session("0-99")},
			status("0-99"),
			{name: "PUT the rest", method: http.MethodPut, path: "{upload}?digest=" + d.String(), header: cr(100, 299), body: data[100:],
				status: 201, headers: created(d)},
		}},
		{name: "last chunk in the PUT without Content-Range", steps: []step{
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: cr(0, 99), body: data[:100], status: 202},
			{name: "PUT", method: http.MethodPut, path: "{upload}?digest=" + d.String(), body: data[100:], status: 201, headers: created(d)},
			getBlob(d, data),
		}},
		{name: "whole blob in the PUT", steps: []step{
			{name: "PUT", method: http.MethodPut, path: "{upload}?digest=" + d.String(), header: octet, body: data, status: 201, headers: created(d)},
			getBlob(d, data),
		}},
		{name: "whole blob streamed in the PUT", steps: []step{
			{name: "PUT", method: http.MethodPut, path: "{upload}?digest=" + d.String(), body: data, stream: true, status: 201, headers: created(d)},
			getBlob(d, data),
		}},
		{name: "streamed PATCH", steps: []step{
			{name: "stream", method: http.MethodPatch, path: "{upload}", header: octet, body: data, stream: true, status: 202, headers: session("0-299")},
			{name: "close", method: http.MethodPut, path: "{upload}?digest=" + d.String(), status: 201, headers: created(d)},
			getBlob(d, data),
		}},
		{name: "two streamed PATCHes", steps: []step{
			{name: "stream 1", method: http.MethodPatch, path: "{upload}", body: data[:150], stream: true, status: 202, headers: session("0-149")},
			{name: "stream 2", method: http.MethodPatch, path: "{upload}", body: data[150:], status: 202, headers: session("0-299")},
			{name: "close", method: http.MethodPut, path: "{upload}?digest=" + d.String(), status: 201, headers: created(d)},
		}},
		{name: "wrong digest at PUT", steps: []step{
			{name: "stream", method: http.MethodPatch, path: "{upload}", body: data, status: 202, headers: session("0-299")},
			{name: "PUT wrong digest", method: http.MethodPut, path: "{upload}?digest=" + other.String(), status: 400, code: CodeDigestInvalid,
				absent: []string{"Location"}},
			status("0-299"),
			{name: "PUT right digest", method: http.MethodPut, path: "{upload}?digest=" + d.String(), status: 201, headers: created(d)},
			getBlob(d, data),
		}},
		{name: "digest parameter", steps: []step{
			{name: "stream", method: http.MethodPatch, path: "{upload}", body: data, status: 202},
			{name: "missing", method: http.MethodPut, path: "{upload}", status: 400, code: CodeDigestInvalid},
			{name: "empty", method: http.MethodPut, path: "{upload}?digest=", status: 400, code: CodeDigestInvalid},
			{name: "invalid", method: http.MethodPut, path: "{upload}?digest=sha256:xyz", status: 400, code: CodeDigestInvalid},
			{name: "missing with a chunk", method: http.MethodPut, path: "{upload}", header: cr(300, 309), body: data[:10], status: 400, code: CodeDigestInvalid},
			status("0-299"),
		}},
		{name: "sha512", steps: []step{
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: cr(0, 149), body: data[:150], status: 202, headers: session("0-149")},
			{name: "last chunk in the PUT", method: http.MethodPut, path: "{upload}?digest=" + d512.String(), header: cr(150, 299), body: data[150:],
				status: 201, headers: created(d512)},
			getBlob(d512, data),
		}},
		{name: "empty blob", steps: []step{
			{name: "close", method: http.MethodPut, path: "{upload}?digest=" + empty.String(), status: 201, headers: created(empty)},
			getBlob(empty, []byte{}),
		}},
		{name: "Content-Length does not match the range", steps: []step{
			{name: "short", method: http.MethodPatch, path: "{upload}", header: cr(0, 99), body: data[:50], status: 400, code: CodeSizeInvalid},
			status("0-0"),
		}},
		{name: "streamed chunk longer than its range", steps: []step{
			{name: "long", method: http.MethodPatch, path: "{upload}", header: cr(0, 49), body: data[:100], stream: true, status: 400, code: CodeSizeInvalid},
			status("0-0"),
		}},
		{name: "streamed chunk shorter than its range", steps: []step{
			{name: "short", method: http.MethodPatch, path: "{upload}", header: cr(0, 99), body: data[:50], stream: true, status: 400, code: CodeSizeInvalid},
			status("0-0"),
		}},
		{name: "malformed Content-Range", steps: []step{
			{name: "not a range", method: http.MethodPatch, path: "{upload}", header: map[string]string{"Content-Range": "abc"}, body: data[:10],
				status: 416, code: CodeBlobUploadInvalid},
			{name: "backwards", method: http.MethodPatch, path: "{upload}", header: map[string]string{"Content-Range": "9-0"}, body: data[:10],
				status: 416, code: CodeBlobUploadInvalid},
			{name: "negative", method: http.MethodPatch, path: "{upload}", header: map[string]string{"Content-Range": "-1-8"}, body: data[:10],
				status: 416, code: CodeBlobUploadInvalid},
			status("0-0"),
		}},
		{name: "RFC 9110 Content-Range", steps: []step{
			{name: "bytes form", method: http.MethodPatch, path: "{upload}", header: map[string]string{"Content-Range": "bytes 0-99/300"}, body: data[:100],
				status: 202, headers: session("0-99")},
		}},
		{name: "HEAD status", steps: []step{
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: cr(0, 9), body: data[:10], status: 202},
			{name: "head", method: http.MethodHead, path: "{upload}", status: 204, headers: session("0-9")},
		}},
		{name: "cancel", steps: []step{
			{name: "chunk 1", method: http.MethodPatch, path: "{upload}", header: cr(0, 9), body: data[:10], status: 202},
			{name: "cancel", method: http.MethodDelete, path: "{upload}", status: 204, body2: []byte{}},
			gone,
			{name: "cancel again", method: http.MethodDelete, path: "{upload}", status: 404, code: CodeBlobUploadUnknown},
			{name: "patch", method: http.MethodPatch, path: "{upload}", header: cr(10, 19), body: data[10:20], status: 404, code: CodeBlobUploadUnknown},
			{name: "put", method: http.MethodPut, path: "{upload}?digest=" + d.String(), status: 404, code: CodeBlobUploadUnknown},
		}},
		{name: "session of another repository", steps: []step{
			{name: "get", method: http.MethodGet, path: "/v2/other/blobs/uploads/{id}", status: 404, code: CodeBlobUploadUnknown},
			{name: "patch", method: http.MethodPatch, path: "/v2/other/blobs/uploads/{id}", body: data, status: 404, code: CodeBlobUploadUnknown},
			status("0-0"),
		}},
		{name: "unknown session", steps: []step{
			{name: "get", method: http.MethodGet, path: "/v2/a/b/blobs/uploads/nope", status: 404, code: CodeBlobUploadUnknown},
			{name: "head", method: http.MethodHead, path: "/v2/a/b/blobs/uploads/nope", status: 404, code: CodeBlobUploadUnknown},
			{name: "patch", method: http.MethodPatch, path: "/v2/a/b/blobs/uploads/nope", body: data, status: 404, code: CodeBlobUploadUnknown},
			{name: "put", method: http.MethodPut, path: "/v2/a/b/blobs/uploads/nope?digest=" + d.String(), status: 404, code: CodeBlobUploadUnknown},
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/blobs/uploads/nope", status: 404, code: CodeBlobUploadUnknown},
			{name: "invalid id", method: http.MethodGet, path: "/v2/a/b/blobs/uploads/no.pe", status: 404, code: CodeBlobUploadUnknown},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWriteEnv(t)
			loc, id := e.startSession(t, "a/b")
			e.run(t, tt.steps, map[string]string{"upload": loc, "id": id})
		})
	}
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

// paddedManifest is a valid manifest of exactly n bytes.
func paddedManifest(n int) []byte {
	head := `{"schemaVersion":2,"mediaType":"` + mediaTypeOCIManifest + `","annotations":{"pad":"`
	tail := `"}}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestManifestPut(t *testing.T) {
	t.Parallel()

	configData := []byte(`{"architecture":"amd64","os":"linux"}`)
	layerData := testBytes(100)
	config := Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: FromBytes(configData), Size: int64(len(configData))}
	layer := Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: FromBytes(layerData), Size: int64(len(layerData))}
	image := manifest(config, []Descriptor{layer}, nil, "", nil)
	imageD := FromBytes(image)
	image512 := sha512Of(image)
	subject := Descriptor{MediaType: mediaTypeOCIManifest, Digest: imageD, Size: int64(len(image))}
	missing := Descriptor{MediaType: mediaTypeOCIManifest, Digest: FromBytes([]byte("missing")), Size: 7}
	artifact := manifest(config, nil, &subject, "application/vnd.example.sbom", nil)
	artifactD := FromBytes(artifact)
	orphan := manifest(config, nil, &missing, "application/vnd.example.sbom", nil)
	unknownBlob := manifest(config, []Descriptor{{MediaType: layer.MediaType, Digest: FromBytes([]byte("nope")), Size: 4}}, nil, "", nil)
	largest := paddedManifest(oci.MaxManifestBytes)
	tooLarge := paddedManifest(oci.MaxManifestBytes + 1)
	ct := map[string]string{"Content-Type": mediaTypeOCIManifest}
	created := func(d Digest) map[string]string {
		return map[string]string{"Location": "/v2/a/b/manifests/" + d.String(), "Docker-Content-Digest": d.String(), "Content-Length": "0"}
	}

	tests := []struct {
		name  string
		step  step
		put   *ManifestPut // what the backend must have been given
		after []step
	}{
		{
			name: "by tag",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: image,
				status: 201, headers: created(imageD), absent: []string{"OCI-Subject", "OCI-Tag"}, body2: []byte{}},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: "v1", MediaType: mediaTypeOCIManifest, Body: image},
			after: []step{
				{name: "get by tag", method: http.MethodGet, path: "/v2/a/b/manifests/v1", status: 200, body2: image,
					headers: map[string]string{"Content-Type": mediaTypeOCIManifest, "Docker-Content-Digest": imageD.String()}},
				{name: "get location", method: http.MethodGet, path: "/v2/a/b/manifests/" + imageD.String(), status: 200, body2: image},
			},
		},
		{
			name: "by digest",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String(), header: ct, body: image,
				status: 201, headers: created(imageD)},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: imageD.String(), Digest: imageD, MediaType: mediaTypeOCIManifest, Body: image},
			after: []step{
				{name: "get", method: http.MethodGet, path: "/v2/a/b/manifests/" + imageD.String(), status: 200, body2: image},
			},
		},
		{
			name: "by sha512 digest",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + image512.String(), header: ct, body: image,
				status: 201, headers: created(image512)},
			after: []step{
				{name: "get", method: http.MethodGet, path: "/v2/a/b/manifests/" + image512.String(), status: 200, body2: image},
			},
		},
		{
			name: "with ns",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1?ns=docker.io", header: ct, body: image,
				status: 201, headers: created(imageD)},
			put: &ManifestPut{Repo: Repo{Name: "a/b", NS: "docker.io"}, Reference: "v1", MediaType: mediaTypeOCIManifest, Body: image},
		},
		{
			name: "with subject",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + artifactD.String(), header: ct, body: artifact,
				status: 201, headers: map[string]string{"OCI-Subject": imageD.String(), "Docker-Content-Digest": artifactD.String()}},
		},
		{
			name: "with a missing subject",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/orphan", header: ct, body: orphan,
				status: 201, headers: map[string]string{"OCI-Subject": missing.Digest.String()}},
		},
		{
			name: "tag parameters",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String() + "?tag=v1&tag=latest&tag=v1", header: ct, body: image,
				status: 201, headers: created(imageD), multi: map[string][]string{"OCI-Tag": {"v1", "latest"}}},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: imageD.String(), Digest: imageD, Tags: []string{"v1", "latest"},
				MediaType: mediaTypeOCIManifest, Body: image},
			after: []step{
				{name: "get tag", method: http.MethodGet, path: "/v2/a/b/manifests/latest", status: 200, body2: image},
			},
		},
		{
			name: "invalid tag parameter",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String() + "?tag=-bad", header: ct, body: image,
				status: 400, code: CodeManifestInvalid},
		},
		{
			name: "Content-Type parameters are dropped",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: map[string]string{"Content-Type": mediaTypeOCIManifest + "; charset=utf-8"},
				body: image, status: 201},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: "v1", MediaType: mediaTypeOCIManifest, Body: image},
		},
		{
			name: "streamed",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: image, stream: true, status: 201, headers: created(imageD)},
		},
		{
			name: "largest accepted",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/big", header: ct, body: largest, status: 201,
				headers: created(FromBytes(largest))},
		},
		{
			name: "too large",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/big", header: ct, body: tooLarge, status: 413, code: CodeManifestInvalid},
		},
		{
			name: "too large streamed",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/big", header: ct, body: tooLarge, stream: true, status: 413, code: CodeManifestInvalid},
		},
		{
			name: "empty",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, status: 400, code: CodeManifestInvalid},
		},
		{
			name: "not JSON",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: []byte("schemaVersion: 2"), status: 400, code: CodeManifestInvalid},
		},
		{
			name: "digest mismatch",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String(), header: ct, body: append(slices.Clone(image), ' ', ' '),
				status: 400, code: CodeDigestInvalid},
		},
		{
			name: "malformed digest reference",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/sha256:baddigeststring", header: ct, body: image, status: 400, code: CodeDigestInvalid},
		},
		{
			name: "invalid tag reference",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/-bad", header: ct, body: image, status: 400, code: CodeManifestInvalid},
		},
		{
			name: "backend error: unknown blob",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: unknownBlob, status: 400, code: CodeManifestBlobUnknown},
		},
		{
			name: "backend error: media type mismatch",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: map[string]string{"Content-Type": mediaTypeOCIIndex},
				body: image, status: 400, code: CodeManifestInvalid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWriteEnv(t)
			e.store.addBlob("a/b", configData)
			e.store.addBlob("a/b", layerData)
			tt.step.name = "put"
			e.run(t, append([]step{tt.step}, tt.after...), nil)
			if tt.put != nil {
				got := e.store.lastPut()
				if !sameRepo(got.Repo, tt.put.Repo) || got.Reference != tt.put.Reference || got.Digest != tt.put.Digest ||
					!slices.Equal(got.Tags, tt.put.Tags) || got.MediaType != tt.put.MediaType || !bytes.Equal(got.Body, tt.put.Body) {
					t.Errorf("PutManifest got %+v\nwant %+v", got, *tt.put)
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()

	body := []byte(`{"schemaVersion":2,"mediaType":"` + mediaTypeOCIManifest + `","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` +
		FromBytes([]byte("{}")).String() + `","size":2},"layers":[]}`)
	d := FromBytes(body)
	blobData := []byte("{}")
	blobD := FromBytes(blobData)
	ct := map[string]string{"Content-Type": mediaTypeOCIManifest}
	push := []step{
		{name: "push blob", method: http.MethodPost, path: "/v2/a/b/blobs/uploads/?digest=" + blobD.String(), body: blobData, status: 201},
		{name: "push manifest", method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: body, status: 201},
		{name: "push tag", method: http.MethodPut, path: "/v2/a/b/manifests/v2", header: ct, body: body, status: 201},
	}

	tests := []struct {
		name  string
		steps []step
	}{
		{name: "manifest by digest", steps: []step{
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/manifests/" + d.String(), status: 202,
				headers: map[string]string{"Content-Length": "0"}, body2: []byte{}},
			{name: "get digest", method: http.MethodGet, path: "/v2/a/b/manifests/" + d.String(), status: 404, code: CodeManifestUnknown},
			{name: "head tag", method: http.MethodHead, path: "/v2/a/b/manifests/v1", status: 404, code: CodeManifestUnknown},
			{name: "delete again", method: http.MethodDelete, path: "/v2/a/b/manifests/" + d.String(), status: 404, code: CodeManifestUnknown},
		}},
		{name: "tag", steps: []step{
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/manifests/v1", status: 202},
			{name: "head tag", method: http.MethodHead, path: "/v2/a/b/manifests/v1", status: 404, code: CodeManifestUnknown},
			{name: "other tag stays", method: http.MethodGet, path: "/v2/a/b/manifests/v2", status: 200, body2: body},
			{name: "manifest stays", method: http.MethodGet, path: "/v2/a/b/manifests/" + d.String(), status: 200, body2: body},
			{name: "delete unknown tag", method: http.MethodDelete, path: "/v2/a/b/manifests/v1", status: 404, code: CodeManifestUnknown},
		}},
		{name: "blob", steps: []step{
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/blobs/" + blobD.String(), status: 202,
				headers: map[string]string{"Content-Length": "0"}, body2: []byte{}},
			{name: "head", method: http.MethodHead, path: "/v2/a/b/blobs/" + blobD.String(), status: 404, code: CodeBlobUnknown},
			{name: "delete again", method: http.MethodDelete, path: "/v2/a/b/blobs/" + blobD.String(), status: 404, code: CodeBlobUnknown},
			{name: "invalid digest", method: http.MethodDelete, path: "/v2/a/b/blobs/sha256:nope", status: 400, code: CodeDigestInvalid},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWriteEnv(t)
			e.run(t, append(slices.Clone(push), tt.steps...), nil)
		})
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()

	e := newWriteEnv(t)
	for _, repo := range []string{"d", "a", "b/c", "e"} {
		e.store.addBlob(repo, []byte(repo))
	}
	repos := func(names ...string) []byte {
		b, _ := json.Marshal(map[string][]string{"repositories": append([]string{}, names...)})
		return b
	}
	tests := []struct {
		name string
		step step
	}{
		{name: "all", step: step{method: http.MethodGet, path: "/v2/_catalog", status: 200, body2: repos("a", "b/c", "d", "e"),
			headers: map[string]string{"Content-Type": "application/json"}, absent: []string{"Link"}}},
		{name: "first page", step: step{method: http.MethodGet, path: "/v2/_catalog?n=2", status: 200, body2: repos("a", "b/c"),
			headers: map[string]string{"Link": `</v2/_catalog?n=2&last=b/c>; rel="next"`}}},
		{name: "last page", step: step{method: http.MethodGet, path: "/v2/_catalog?n=2&last=b/c", status: 200, body2: repos("d", "e"),
			absent: []string{"Link"}}},
		{name: "last only", step: step{method: http.MethodGet, path: "/v2/_catalog?last=a", status: 200, body2: repos("b/c", "d", "e")}},
		{name: "last not listed", step: step{method: http.MethodGet, path: "/v2/_catalog?last=c", status: 200, body2: repos("d", "e")}},
		{name: "past the end", step: step{method: http.MethodGet, path: "/v2/_catalog?last=z", status: 200, body2: repos()}},
		{name: "n=0", step: step{method: http.MethodGet, path: "/v2/_catalog?n=0", status: 200, body2: repos(), absent: []string{"Link"}}},
		{name: "n larger than the list", step: step{method: http.MethodGet, path: "/v2/_catalog?n=10", status: 200, body2: repos("a", "b/c", "d", "e"),
			absent: []string{"Link"}}},
		{name: "head", step: step{method: http.MethodHead, path: "/v2/_catalog", status: 200,
			headers: map[string]string{"Content-Length": strconv.Itoa(len(repos("a", "b/c", "d", "e")))}}},
		{name: "negative n", step: step{method: http.MethodGet, path: "/v2/_catalog?n=-1", status: 400, code: CodeUnsupported}},
		{name: "bad n", step: step{method: http.MethodGet, path: "/v2/_catalog?n=x", status: 400, code: CodeUnsupported}},
		{name: "post", step: step{method: http.MethodPost, path: "/v2/_catalog", status: 405, code: CodeUnsupported}},
		{name: "delete", step: step{method: http.MethodDelete, path: "/v2/_catalog", status: 405, code: CodeUnsupported}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.step.name = tt.step.method
			e.run(t, []step{tt.step}, nil)
		})
	}

	t.Run("follow links", func(t *testing.T) {
		t.Parallel()
		var all []string
		path := "/v2/_catalog?n=1"
		for range 10 {
			resp, body := e.send(t, http.MethodGet, path, nil, nil, false)
			var page struct{ Repositories []string }
			if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
			}
			all = append(all, page.Repositories...)
			link := resp.Header.Get("Link")
			if link == "" {
				break
			}
			path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
		}
		if want := []string{"a", "b/c", "d", "e"}; !slices.Equal(all, want) {
			t.Errorf("followed links: %q, want %q", all, want)
		}
	})

	t.Run("empty registry", func(t *testing.T) {
		t.Parallel()
		newWriteEnv(t).run(t, []step{{name: "get", method: http.MethodGet, path: "/v2/_catalog", status: 200, body2: []byte(`{"repositories":[]}`)}}, nil)
	})
}

func TestReferrers(t *testing.T) {
	t.Parallel()

	const (
		sbom    = "application/vnd.example.sbom"
		sig     = "application/vnd.example.sig"
		cfgType = "application/vnd.example.config"
	)
	e := newWriteEnv(t)
	ctx := context.Background()
	configData := []byte("{}")
	e.store.addBlob("a/b", configData)
	emptyConfig := Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: FromBytes(configData), Size: 2}
	customConfig := Descriptor{MediaType: cfgType, Digest: FromBytes(configData), Size: 2}

	subjectBody := manifest(emptyConfig, nil, nil, "", nil)
	subjectD := FromBytes(subjectBody)
	subject := Descriptor{MediaType: mediaTypeOCIManifest, Digest: subjectD, Size: int64(len(subjectBody))}
	put := func(body []byte) Descriptor {
		t.Helper()
		res, err := e.store.PutManifest(ctx, ManifestPut{Repo: Repo{Name: "a/b"}, Reference: FromBytes(body).String(),
			Digest: FromBytes(body), MediaType: mediaTypeOCIManifest, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return Descriptor{MediaType: mediaTypeOCIManifest, Digest: res.Digest, Size: int64(len(body))}
	}
	put(subjectBody)
	sbomD := put(manifest(emptyConfig, nil, &subject, sbom, map[string]string{"org.example": "sbom"}))
	sbomD.ArtifactType, sbomD.Annotations = sbom, map[string]string{"org.example": "sbom"}
	sigD := put(manifest(emptyConfig, nil, &subject, sig, nil))
	sigD.ArtifactType = sig
	cfgD := put(manifest(customConfig, nil, &subject, "", nil))
	cfgD.ArtifactType = cfgType
	all := []Descriptor{sbomD, sigD, cfgD}
	slices.SortFunc(all, func(a, b Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })

	index := func(descs ...Descriptor) func(t *testing.T, resp *http.Response, body []byte) {
		return func(t *testing.T, _ *http.Response, body []byte) {
			t.Helper()
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if string(raw["schemaVersion"]) != "2" || string(raw["mediaType"]) != `"`+oci.MediaTypeImageIndex+`"` {
				t.Errorf("body %s: not an OCI index", body)
			}
			if descs == nil && string(raw["manifests"]) != "[]" {
				t.Errorf("manifests = %s, want []", raw["manifests"])
			}
			var got []Descriptor
			if err := json.Unmarshal(raw["manifests"], &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(descs) {
				t.Fatalf("manifests = %+v, want %+v", got, descs)
			}
			for i := range got {
				g, w := got[i], descs[i]
				if g.MediaType != w.MediaType || g.Digest != w.Digest || g.Size != w.Size || g.ArtifactType != w.ArtifactType ||
					len(g.Annotations) != len(w.Annotations) || g.Annotations["org.example"] != w.Annotations["org.example"] {
					t.Errorf("manifests[%d] = %+v, want %+v", i, g, w)
				}
			}
		}
	}
	ct := map[string]string{"Content-Type": oci.MediaTypeImageIndex}
	filtered := map[string]string{"Content-Type": oci.MediaTypeImageIndex, "OCI-Filters-Applied": "artifactType"}
	base := "/v2/a/b/referrers/" + subjectD.String()

	tests := []struct {
		name string
		step step
	}{
		{name: "all", step: step{method: http.MethodGet, path: base, status: 200, headers: ct, absent: []string{"OCI-Filters-Applied"},
			check: index(all...)}},
		{name: "filtered", step: step{method: http.MethodGet, path: base + "?artifactType=" + sbom, status: 200, headers: filtered,
			check: index(sbomD)}},
		{name: "filtered by config media type", step: step{method: http.MethodGet, path: base + "?artifactType=" + cfgType, status: 200, headers: filtered,
			check: index(cfgD)}},
		{name: "filter matching nothing", step: step{method: http.MethodGet, path: base + "?artifactType=application/none", status: 200, headers: filtered,
			check: index()}},
		{name: "empty filter", step: step{method: http.MethodGet, path: base + "?artifactType=", status: 200, headers: ct, absent: []string{"OCI-Filters-Applied"},
			check: index(all...)}},
		{name: "unknown subject", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/" + FromBytes([]byte("x")).String(), status: 200, headers: ct,
			check: index()}},
		{name: "unknown sha512 subject", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/" + sha512Of([]byte("x")).String(), status: 200,
			check: index()}},
		{name: "unknown repository", step: step{method: http.MethodGet, path: "/v2/nobody/referrers/" + subjectD.String(), status: 200, headers: ct,
			check: index()}},
		{name: "referrer of a referrer", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/" + sbomD.Digest.String(), status: 200,
			check: index()}},
		{name: "head", step: step{method: http.MethodHead, path: base, status: 200, headers: ct}},
		{name: "invalid digest", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/sha256:nope", status: 400, code: CodeDigestInvalid}},
		{name: "tag instead of digest", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/latest", status: 400, code: CodeDigestInvalid}},
		{name: "delete", step: step{method: http.MethodDelete, path: base, status: 405, code: CodeUnsupported}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.step.name = tt.step.method
			e.run(t, []step{tt.step}, nil)
		})
	}

	t.Run("push then list over HTTP", func(t *testing.T) {
		t.Parallel()
		e := newWriteEnv(t)
		e.store.addBlob("x/y", configData)
		ct := map[string]string{"Content-Type": mediaTypeOCIManifest}
		const at = "application/vnd.example.http"
		body := manifest(emptyConfig, nil, &subject, at, map[string]string{"org.example": "http"})
		d := FromBytes(body)
		want := Descriptor{MediaType: mediaTypeOCIManifest, Digest: d, Size: int64(len(body)), ArtifactType: at,
			Annotations: map[string]string{"org.example": "http"}}
		e.run(t, []step{
			{name: "push referrer before its subject", method: http.MethodPut, path: "/v2/x/y/manifests/" + d.String(), header: ct, body: body,
				status: 201, headers: map[string]string{"OCI-Subject": subjectD.String(), "Location": "/v2/x/y/manifests/" + d.String()}},
			{name: "push subject", method: http.MethodPut, path: "/v2/x/y/manifests/v1", header: ct, body: subjectBody,
				status: 201, absent: []string{"OCI-Subject"}},
			{name: "list", method: http.MethodGet, path: "/v2/x/y/referrers/" + subjectD.String(), status: 200, check: index(want)},
			{name: "list filtered", method: http.MethodGet, path: "/v2/x/y/referrers/" + subjectD.String() + "?artifactType=" + at,
				status: 200, headers: map[string]string{"OCI-Filters-Applied": "artifactType"}, check: index(want)},
			{name: "delete referrer", method: http.MethodDelete, path: "/v2/x/y/manifests/" + d.String(), status: 202},
			{name: "list after delete", method: http.MethodGet, path: "/v2/x/y/referrers/" + subjectD.String(), status: 200, check: index()},
		}, nil)
	})
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
