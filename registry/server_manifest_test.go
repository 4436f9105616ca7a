package registry

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

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
