package registry

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

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
