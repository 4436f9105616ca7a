package mirror

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/internal/oci"
	"berth/registry"
	"berth/test/testreg"
	"berth/upstream"

	"go.uber.org/zap"
)

// These tests hold the visibility rule across the cache and the local
// repositories (docs/security.md, "Who sees what"): a route sees only
// stored content that belongs to it, and content it may not see is
// answered exactly as content never stored.

// privateUpstream starts the upstream of rule "priv", which Berth reaches
// with credentials (the in-memory registry ignores them).
func (e *mirrorEnv) privateUpstream(zl *zap.Logger) *upstream.Upstream {
	e.t.Helper()
	e.priv = testreg.Start(e.t)
	pw := filepath.Join(e.t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	u, err := upstream.New(upstream.Rule{Name: "priv", Prefix: "priv", URL: e.priv.URL, Username: "berth", PasswordFile: pw}, nil, zl)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// pullPrivate pushes a one-layer image to the private upstream under each
// of repos, pulls its layer through priv/<repos[0]>, forgets the requests
// the upstream saw so far, and returns the layer's digest and bytes.
func (e *mirrorEnv) pullPrivate(t *testing.T, seed uint64, repos ...string) (string, []byte) {
	t.Helper()
	img := testreg.Image(t, seed, 1000)
	for _, r := range repos {
		e.priv.Push(t, r, "v1", img)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(http.MethodGet, "/v2/priv/"+repos[0]+"/blobs/"+d.String(), nil)
	wantStatus200(t, resp, body)
	e.priv.Reset()
	return d.String(), body
}

// A manifest pushed only to a local repository is not served by digest on
// any cached route, and a pushed blob is not either (that probe used to
// crash the handler): the upstream is asked, and its 404 is the answer.
func TestPushedContentIsNotOnCachedRoutes(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{defaultRule: true, localPrefixes: []string{"local"}})
	im := newLocalImage("secret")
	e.push("local/secret", "v1", im)
	md, ld := sha(im.manifest), sha(im.layer)
	for _, path := range []string{
		"/v2/hub/library/anything/manifests/" + md,
		"/v2/library/anything/manifests/" + md,
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := e.do(method, path, nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %d %s, want 404", method, path, resp.StatusCode, body)
			}
		}
	}
	for _, path := range []string{"/v2/hub/library/anything/blobs/" + ld, "/v2/library/anything/blobs/" + ld} {
		resp, body := e.do(http.MethodGet, path, nil)
		wantMirrorError(t, resp, body, http.StatusNotFound, registry.CodeBlobUnknown)
	}
	if e.up.Count("GET manifests") == 0 {
		t.Errorf("the upstream was not asked for the manifest: %v", e.up.Requests())
	}
	// The owner still reads it.
	resp, body := e.do(http.MethodGet, "/v2/local/secret/manifests/"+md, nil)
	wantStatus200(t, resp, body)
}

// A blob fetched from an upstream with credentials stays with the cached
// repository it was fetched for: another repository of the rule, another
// rule and a local repository get 404, and it cannot be mounted from a
// source that does not see it.
func TestCredentialedBlobStaysInItsRepository(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{localPrefixes: []string{"local"}, privateRule: true})
	ld, _ := e.pullPrivate(t, 7, "team/a")
	// The in-memory upstream keeps blobs per digest; a real one with
	// accounts answers per repository: team/b does not hold the blob.
	e.priv.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/team/b/") {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}`, http.StatusNotFound)
			return true
		}
		return false
	})

	for _, path := range []string{
		"/v2/priv/team/b/blobs/" + ld,            // another repository of the rule
		"/v2/hub/library/alpine/blobs/" + ld,     // another rule
		"/v2/local/app/blobs/" + ld,              // a local repository
		"/v2/local/app/blobs/" + ld + "?ns=x.io", // (the same, as containerd names it)
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if resp, _ := e.do(method, path, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404", method, path, resp.StatusCode)
			}
		}
	}
	if n := e.priv.Count("GET blobs"); n != 0 {
		t.Errorf("a stored blob was downloaded again: %v", e.priv.Requests())
	}
	for _, q := range []string{"", "&from=hub/library/alpine", "&from=local/empty", "&from=priv/team/b"} {
		resp, body := e.do(http.MethodPost, "/v2/local/app/blobs/uploads/?mount="+ld+q, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("mount with %q: %d %s, want 202 (an upload session)", q, resp.StatusCode, body)
		}
	}
	// From the repository that sees it, the mount works.
	resp, body := e.do(http.MethodPost, "/v2/local/app/blobs/uploads/?mount="+ld+"&from=priv/team/a", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mount from priv/team/a: %d %s, want 201", resp.StatusCode, body)
	}
}

// Pushing the bytes of a cached manifest with another Content-Type changes
// the media type in the pushing repository only: the cached copy keeps the
// upstream's, so OCI-only clients still get it.
func TestPushedMediaTypeStaysInItsRepository(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{localPrefixes: []string{"local"}})
	im := newLocalImage("shared")
	// The same document without a mediaType field: its type is whatever
	// the Content-Type of each push says.
	var doc map[string]any
	if err := json.Unmarshal(im.manifest, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "mediaType")
	im.manifest, _ = json.Marshal(doc)
	e.upPut(t, "team/app/blobs/uploads/", "", im.config, im.layer)
	e.upPut(t, "team/app/manifests/v1", oci.MediaTypeImageManifest, im.manifest)

	ociOnly := []string{"Accept", oci.MediaTypeImageManifest}
	resp, body := e.do(http.MethodGet, "/v2/hub/team/app/manifests/v1", nil, ociOnly...)
	wantStatus200(t, resp, body)

	const docker = "application/vnd.docker.distribution.manifest.v2+json"
	for _, b := range [][]byte{im.config, im.layer} {
		resp, body := e.do(http.MethodPost, "/v2/local/copy/blobs/uploads/?digest="+sha(b), b)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("blob push: %d %s", resp.StatusCode, body)
		}
	}
	resp, body = e.do(http.MethodPut, "/v2/local/copy/manifests/v1", im.manifest, "Content-Type", docker)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push with %s: %d %s", docker, resp.StatusCode, body)
	}
	resp, body = e.do(http.MethodGet, "/v2/local/copy/manifests/v1", nil)
	if wantStatus200(t, resp, body); resp.Header.Get("Content-Type") != docker {
		t.Errorf("local copy: Content-Type %s, want %s", resp.Header.Get("Content-Type"), docker)
	}
	for _, path := range []string{"/v2/hub/team/app/manifests/v1", "/v2/hub/team/app/manifests/" + sha(im.manifest)} {
		resp, body = e.do(http.MethodGet, path, nil, ociOnly...)
		wantStatus200(t, resp, body)
		if got := resp.Header.Get("Content-Type"); got != oci.MediaTypeImageManifest {
			t.Errorf("%s: Content-Type %s, want %s", path, got, oci.MediaTypeImageManifest)
		}
	}
}

// A blob stored for another route is confirmed with this route's upstream
// once (a HEAD), then linked and served from the store: no second
// download, and no question the next time.
func TestStoredBlobConfirmedOncePerRepository(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{privateRule: true})
	ld, want := e.pullPrivate(t, 8, "team/a", "team/b")
	for range 2 {
		resp, body := e.do(http.MethodGet, "/v2/priv/team/b/blobs/"+ld, nil)
		wantStatus200(t, resp, body)
		if string(body) != string(want) {
			t.Fatal("confirmed blob differs")
		}
	}
	got := e.priv.Requests()
	if n := e.priv.Count("HEAD blobs"); n != 1 || e.priv.Count("GET blobs") != 0 || !slices.Contains(got, "HEAD /v2/team/b/blobs/"+ld) {
		t.Errorf("upstream saw %v, want one HEAD of team/b's blob and no GET", got)
	}
}

// upPut writes to the hub upstream directly: blobs (monolithic uploads) to
// an uploads path, or one manifest of type mt.
func (e *mirrorEnv) upPut(t *testing.T, path, mt string, bodies ...[]byte) {
	t.Helper()
	for _, b := range bodies {
		u := e.up.URL + "/v2/" + path
		if mt == "" {
			resp, err := http.Post(u, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if loc == "" || loc[0] == '/' {
				loc = e.up.URL + loc
			}
			u = withQuery(loc, "digest="+sha(b))
		}
		req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(b))
		if mt != "" {
			req.Header.Set("Content-Type", mt)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s upstream: %d", u, resp.StatusCode)
		}
	}
}

// A blob a rule without credentials fetched is public content: every
// repository of that rule sees it without asking the upstream again, and
// no other rule does.
func TestAnonymousRuleSharesItsBlobs(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{privateRule: true})
	img := testreg.Image(t, 9, 800)
	e.up.Push(t, "team/a", "v1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	resp, body := e.do(http.MethodGet, "/v2/hub/team/a/blobs/"+d.String(), nil)
	wantStatus200(t, resp, body)
	e.up.Reset()
	resp, body = e.do(http.MethodGet, "/v2/hub/team/b/blobs/"+d.String(), nil)
	wantStatus200(t, resp, body)
	if n := e.up.Count("total"); n != 0 {
		t.Errorf("the upstream was asked again: %v", e.up.Requests())
	}
	if resp, _ := e.do(http.MethodGet, "/v2/priv/team/a/blobs/"+d.String(), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another rule: %d, want 404", resp.StatusCode)
	}
}
