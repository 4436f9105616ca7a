package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/internal/oci"
	"berth/local"
	"berth/proxy"
	"berth/registry"
	"berth/store"
	"berth/test/testreg"
	"berth/upstream"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// mirrorEnv is Berth serving a Mirror: the cache of one upstream (a real
// in-memory registry) named and prefixed "hub", registry hub.example, and
// local repositories beside it.
type mirrorEnv struct {
	t      *testing.T
	proxy  *proxy.Proxy
	up     *testreg.Registry
	priv   *testreg.Registry // with privateRule
	store  *store.Store
	srv    *httptest.Server
	client *http.Client
}

type mirrorOpts struct {
	// defaultRule makes hub take every name no prefix claims.
	defaultRule bool
	// localPrefixes are first components that stay local even then.
	localPrefixes []string
	// privateRule adds a second upstream, named and prefixed "priv",
	// that Berth reaches with credentials.
	privateRule bool
}

func newMirrorEnv(t *testing.T, o mirrorOpts) *mirrorEnv {
	t.Helper()
	e := &mirrorEnv{t: t, up: testreg.Start(t)}
	zl := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	var err error
	e.store, err = store.Open(context.Background(), t.TempDir(), store.Options{Logger: zl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	u, err := upstream.New(upstream.Rule{Name: "hub", Prefix: "hub", Registry: "hub.example", URL: e.up.URL, Default: o.defaultRule}, nil, zl)
	if err != nil {
		t.Fatal(err)
	}
	ups := []*upstream.Upstream{u}
	if o.privateRule {
		ups = append(ups, e.privateUpstream(zl))
	}
	p := proxy.New(e.store, upstream.Fixed(upstream.NewRouter(ups, o.localPrefixes...)), proxy.Options{Logger: zl})
	t.Cleanup(p.Close)
	e.proxy = p
	repos := local.New(e.store, local.Options{AutoCreate: true, Logger: zl})
	e.srv = httptest.NewServer(registry.New(New(p, repos, e.store, Options{}), registry.WithLogger(zl)))
	t.Cleanup(e.srv.Close)
	e.client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

func (e *mirrorEnv) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	// A fill's client has the last byte before the blob is committed;
	// these tests look at the store right after a pull.
	if err := e.proxy.WaitFills(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// localImage is a minimal OCI image: a config, one layer and the manifest.
type localImage struct {
	config, layer, manifest []byte
}

func newLocalImage(name string) localImage {
	im := localImage{config: []byte(`{"name":"` + name + `"}`), layer: []byte("layer of " + name)}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     oci.MediaTypeImageManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(im.config), "size": len(im.config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(im.layer), "size": len(im.layer)}},
	}
	im.manifest, _ = json.Marshal(m)
	return im
}

// push pushes im as name:tag and checks every step.
func (e *mirrorEnv) push(name, tag string, im localImage) {
	e.t.Helper()
	for _, b := range [][]byte{im.config, im.layer} {
		resp, body := e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+sha(b), b)
		if resp.StatusCode != http.StatusCreated {
			e.t.Fatalf("blob push to %s: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, body := e.do(http.MethodPut, "/v2/"+name+"/manifests/"+tag, im.manifest, "Content-Type", oci.MediaTypeImageManifest)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("manifest push to %s:%s: %d %s", name, tag, resp.StatusCode, body)
	}
}

// withQuery adds q to a path that may already have a query.
func withQuery(path, q string) string {
	if q == "" {
		return path
	}
	if strings.Contains(path, "?") {
		return path + "&" + q
	}
	return path + "?" + q
}

func TestMirrorRefusesWritesToCachedRepositories(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{defaultRule: true, localPrefixes: []string{"local"}})
	// Something cached, so the names exist and have content.
	img := testreg.Image(t, 1, 512)
	d := e.up.Push(t, "team/app", "v1", img)
	resp, body := e.do(http.MethodGet, "/v2/hub/team/app/manifests/v1", nil)
	wantStatus200(t, resp, body)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()

	im := newLocalImage("x")
	names := []struct {
		name string
		repo string // as in the path
		ns   string // ?ns=
	}{
		{name: "prefixed", repo: "hub/team/app"},
		{name: "default-routed", repo: "team/app"},
		{name: "default-routed single component", repo: "alpine"},
		{name: "by ns", repo: "team/app", ns: "ns=hub.example"},
		{name: "prefixed never pulled", repo: "hub/never/pulled"},
	}
	requests := []struct {
		name   string
		method string
		path   string // after /v2/<repo>
		body   []byte
		hdr    []string
	}{
		{name: "PUT manifest by tag", method: http.MethodPut, path: "/manifests/v2", body: im.manifest, hdr: []string{"Content-Type", oci.MediaTypeImageManifest}},
		{name: "PUT manifest by digest", method: http.MethodPut, path: "/manifests/" + sha(im.manifest), body: im.manifest, hdr: []string{"Content-Type", oci.MediaTypeImageManifest}},
		{name: "POST upload", method: http.MethodPost, path: "/blobs/uploads/"},
		{name: "POST monolithic upload", method: http.MethodPost, path: "/blobs/uploads/?digest=" + sha(im.layer), body: im.layer},
		{name: "POST mount", method: http.MethodPost, path: "/blobs/uploads/?mount=" + ld.String() + "&from=hub/team/app"},
		{name: "POST anonymous mount", method: http.MethodPost, path: "/blobs/uploads/?mount=" + ld.String()},
		{name: "PATCH upload", method: http.MethodPatch, path: "/blobs/uploads/0123456789abcdef", body: []byte("x")},
		{name: "PUT upload", method: http.MethodPut, path: "/blobs/uploads/0123456789abcdef?digest=" + sha(im.layer), body: im.layer},
		{name: "DELETE upload", method: http.MethodDelete, path: "/blobs/uploads/0123456789abcdef"},
		{name: "DELETE manifest by tag", method: http.MethodDelete, path: "/manifests/v1"},
		{name: "DELETE manifest by digest", method: http.MethodDelete, path: "/manifests/" + d.String()},
		{name: "DELETE blob", method: http.MethodDelete, path: "/blobs/" + ld.String()},
	}
	e.up.Reset()
	for _, n := range names {
		for _, rq := range requests {
			t.Run(n.name+"/"+rq.name, func(t *testing.T) {
				e := *e
				e.t = t
				resp, body := e.do(rq.method, withQuery("/v2/"+n.repo+rq.path, n.ns), rq.body, rq.hdr...)
				msg := wantMirrorError(t, resp, body, http.StatusMethodNotAllowed, registry.CodeUnsupported)
				if !strings.Contains(msg, "pull-through cache") {
					t.Fatalf("message %q does not say the repository is a pull-through cache", msg)
				}
			})
		}
	}
	// Nothing reached the upstream, and the cache is as it was.
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("refused writes sent %d requests upstream: %v", n, e.up.Requests())
	}
	resp, body = e.do(http.MethodGet, "/v2/hub/team/app/manifests/v1", nil)
	wantStatus200(t, resp, body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("cached v1 is %s, want %s", got, d)
	}
	resp, body = e.do(http.MethodGet, "/v2/hub/team/app/blobs/"+ld.String(), nil)
	wantStatus200(t, resp, body)
	// An ns no rule mirrors is unknown, not a refused write.
	resp, body = e.do(http.MethodPut, "/v2/team/app/manifests/v2?ns=other.example", im.manifest, "Content-Type", oci.MediaTypeImageManifest)
	wantMirrorError(t, resp, body, http.StatusNotFound, registry.CodeNameUnknown)
}

func TestMirrorLocalNamesAreWritable(t *testing.T) {
	tests := []struct {
		name     string
		opts     mirrorOpts
		writable []string
		cached   []string
	}{
		{name: "default rule with a local prefix", opts: mirrorOpts{defaultRule: true, localPrefixes: []string{"local"}},
			writable: []string{"local/app", "local/team/app"}, cached: []string{"app", "team/app", "hub/app", "localx/app"}},
		{name: "no default rule", opts: mirrorOpts{},
			writable: []string{"app", "team/app", "local/app"}, cached: []string{"hub/app", "hub/team/app"}},
		{name: "no default rule, local prefixes", opts: mirrorOpts{localPrefixes: []string{"local", "ci"}},
			writable: []string{"app", "ci/build", "local/app"}, cached: []string{"hub/app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMirrorEnv(t, tt.opts)
			for _, name := range tt.writable {
				im := newLocalImage(name)
				e.push(name, "v1", im)
				resp, body := e.do(http.MethodGet, "/v2/"+name+"/manifests/v1", nil)
				wantStatus200(t, resp, body)
				if !bytes.Equal(body, im.manifest) || resp.Header.Get("Docker-Content-Digest") != sha(im.manifest) {
					t.Fatalf("%s:v1 is not what was pushed", name)
				}
				resp, body = e.do(http.MethodGet, "/v2/"+name+"/blobs/"+sha(im.layer), nil)
				wantStatus200(t, resp, body)
				if !bytes.Equal(body, im.layer) {
					t.Fatalf("%s layer differs", name)
				}
				resp, body = e.do(http.MethodDelete, "/v2/"+name+"/manifests/v1", nil)
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("DELETE %s:v1: %d %s", name, resp.StatusCode, body)
				}
			}
			for _, name := range tt.cached {
				im := newLocalImage(name)
				resp, body := e.do(http.MethodPut, "/v2/"+name+"/manifests/v1", im.manifest, "Content-Type", oci.MediaTypeImageManifest)
				wantMirrorError(t, resp, body, http.StatusMethodNotAllowed, registry.CodeUnsupported)
			}
			// Reads of a local name never ask the upstream.
			e.up.Reset()
			resp, body := e.do(http.MethodGet, "/v2/"+tt.writable[0]+"/manifests/missing", nil)
			wantMirrorError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
			if n := e.up.Count("total"); n != 0 {
				t.Fatalf("a local read went upstream: %v", e.up.Requests())
			}
		})
	}
}

// Mounting a blob pulled through the cache into a local repository, by the
// name the client pulled it under; only a source that sees the blob
// mounts it.
func TestMirrorMountFromCache(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{defaultRule: true, localPrefixes: []string{"local"}})
	img := testreg.Image(t, 2, 700)
	e.up.Push(t, "library/alpine", "latest", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	want, _ := layers[0].Compressed()
	wantBytes, _ := io.ReadAll(want)
	want.Close()
	// Pull the layer through, default-routed.
	resp, body := e.do(http.MethodGet, "/v2/library/alpine/blobs/"+ld.String(), nil)
	wantStatus200(t, resp, body)
	e.up.Reset()
	for _, tc := range []struct{ repo, from string }{
		{"local/one", "hub/library/alpine"},
		{"local/two", "library/alpine"},
	} {
		q := "?mount=" + ld.String()
		if tc.from != "" {
			q += "&from=" + tc.from
		}
		resp, body := e.do(http.MethodPost, "/v2/"+tc.repo+"/blobs/uploads/"+q, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("mount into %s from %q: %d %s", tc.repo, tc.from, resp.StatusCode, body)
		}
		resp, body = e.do(http.MethodGet, "/v2/"+tc.repo+"/blobs/"+ld.String(), nil)
		wantStatus200(t, resp, body)
		if !bytes.Equal(body, wantBytes) {
			t.Fatalf("%s: mounted layer differs", tc.repo)
		}
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("mounts asked the upstream: %v", e.up.Requests())
	}
	// A mount that names no source, or a source that does not see the
	// blob, mounts nothing: the client gets an upload session.
	for _, from := range []string{"", "&from=local/empty"} {
		resp, body := e.do(http.MethodPost, "/v2/local/three/blobs/uploads/?mount="+ld.String()+from, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("mount into local/three with %q: %d %s, want 202 (an upload session)", from, resp.StatusCode, body)
		}
	}
	resp, body = e.do(http.MethodGet, "/v2/local/three/blobs/"+ld.String(), nil)
	wantMirrorError(t, resp, body, http.StatusNotFound, registry.CodeBlobUnknown)
}

func TestMirrorCatalog(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{defaultRule: true, localPrefixes: []string{"local"}})
	for i, name := range []string{"team/app", "library/alpine", "team/other"} {
		e.up.Push(t, name, "v1", testreg.Image(t, uint64(10+i), 256))
	}
	for _, path := range []string{
		"/v2/hub/team/app/manifests/v1",              // prefixed
		"/v2/library/alpine/manifests/v1",            // default-routed
		"/v2/team/other/manifests/v1?ns=hub.example", // by ns
		"/v2/hub/team/app/manifests/v1",              // again: listed once
	} {
		resp, body := e.do(http.MethodGet, path, nil)
		wantStatus200(t, resp, body)
	}
	e.push("local/zeta", "v1", newLocalImage("zeta"))
	e.push("local/alpha", "v1", newLocalImage("alpha"))
	e.push("local/alpha", "v2", newLocalImage("alpha2"))

	want := []string{"hub/library/alpine", "hub/team/app", "hub/team/other", "local/alpha", "local/zeta"}
	catalog := func(q string) ([]string, string) {
		t.Helper()
		resp, body := e.do(http.MethodGet, "/v2/_catalog"+q, nil)
		wantStatus200(t, resp, body)
		var c struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(body, &c); err != nil || c.Repositories == nil {
			t.Fatalf("catalog body %s: %v", body, err)
		}
		return c.Repositories, resp.Header.Get("Link")
	}
	if got, link := catalog(""); !slices.Equal(got, want) || link != "" {
		t.Fatalf("catalog %v (Link %q), want %v", got, link, want)
	}

	pages := []struct {
		name     string
		query    string
		want     []string
		wantLink string
	}{
		{name: "first page", query: "?n=2", want: want[:2], wantLink: `</v2/_catalog?n=2&last=hub/team/app>; rel="next"`},
		{name: "second page", query: "?n=2&last=hub/team/app", want: want[2:4], wantLink: `</v2/_catalog?n=2&last=local/alpha>; rel="next"`},
		{name: "last page", query: "?n=2&last=local/alpha", want: want[4:]},
		{name: "exact fit", query: "?n=5", want: want},
		{name: "after the end", query: "?last=local/zeta", want: []string{}},
		{name: "last between entries", query: "?n=1&last=hub/z", want: want[3:4], wantLink: `</v2/_catalog?n=1&last=local/alpha>; rel="next"`},
		{name: "n=0", query: "?n=0", want: []string{}},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			got, link := catalog(p.query)
			if !slices.Equal(got, p.want) || link != p.wantLink {
				t.Fatalf("catalog%s = %v, Link %q; want %v, Link %q", p.query, got, link, p.want, p.wantLink)
			}
		})
	}
	// Following the Link pages, of any size, lists every repository once.
	followPages(t, "/v2/_catalog", catalog, want)
	resp, body := e.do(http.MethodGet, "/v2/_catalog?n=-1", nil)
	wantMirrorError(t, resp, body, http.StatusBadRequest, registry.CodeUnsupported)
}

func wantStatus200(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d, want 200 (body %s)", resp.Request.Method, resp.Request.URL, resp.StatusCode, body)
	}
}

// wantMirrorError checks an OCI error and returns its message.
func wantMirrorError(t *testing.T, resp *http.Response, body []byte, status int, code string) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d (body %s)", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
	var eb struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("body %q is not an OCI error: %v", body, err)
	}
	if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		t.Fatalf("error %+v, want code %s with a message", eb.Errors[0], code)
	}
	return eb.Errors[0].Message
}

// TestMirrorLocalTagPages: a local repository's tags/list with n and
// last reads its page from the store, and following the Link pages
// lists every tag once; the tag named by last need not exist.
func TestMirrorLocalTagPages(t *testing.T) {
	e := newMirrorEnv(t, mirrorOpts{defaultRule: true, localPrefixes: []string{"local"}})
	want := []string{"a", "b", "c", "d", "e"}
	for _, tag := range want {
		e.push("local/app", tag, newLocalImage("app"))
	}
	tags := func(q string) ([]string, string) {
		t.Helper()
		resp, body := e.do(http.MethodGet, "/v2/local/app/tags/list"+q, nil)
		wantStatus200(t, resp, body)
		var l struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &l); err != nil || l.Tags == nil {
			t.Fatalf("tags body %s: %v", body, err)
		}
		return l.Tags, resp.Header.Get("Link")
	}
	followPages(t, "/v2/local/app/tags/list", tags, want)
	if got, _ := tags("?n=2&last=bb"); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("after a tag that is not there: %v", got)
	}
	resp, body := e.do(http.MethodGet, "/v2/local/nope/tags/list?n=2", nil)
	wantMirrorError(t, resp, body, http.StatusNotFound, registry.CodeNameUnknown)
}

// followPages reads a listing at path in pages of 1 to len(want)+1
// entries, following each answer's Link, and checks that the pages
// together are want. get returns a page's entries and its Link header.
func followPages(t *testing.T, path string, get func(q string) ([]string, string), want []string) {
	t.Helper()
	for n := 1; n <= len(want)+1; n++ {
		var all []string
		q := "?n=" + strconv.Itoa(n)
		for q != "" {
			got, link := get(q)
			all = append(all, got...)
			q = strings.TrimSuffix(strings.TrimPrefix(link, "<"+path), `>; rel="next"`)
		}
		if !slices.Equal(all, want) {
			t.Errorf("%s in pages of %d: %v, want %v", path, n, all, want)
		}
	}
}
