package local_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/oci"
	"berth/internal/testclock"
	"berth/local"
	"berth/mirror"
	"berth/proxy"
	"berth/reclaim"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Media types used by the tests.
const (
	ociManifest  = oci.MediaTypeImageManifest
	ociIndex     = oci.MediaTypeImageIndex
	ociConfig    = "application/vnd.oci.image.config.v1+json"
	ociLayer     = "application/vnd.oci.image.layer.v1.tar+gzip"
	ociEmpty     = "application/vnd.oci.empty.v1+json"
	dockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerConfig = "application/vnd.docker.container.image.v1+json"
)

// envOptions shape a test node.
type envOptions struct {
	// manualCreate turns auto-create off.
	manualCreate bool
	// defaultMutability of auto-created repositories.
	defaultMutability string
	// cachedPrefix, when set, adds an upstream rule named and prefixed
	// "hub" (never contacted by these tests), so names under hub/ are
	// cached repositories.
	cachedPrefix bool
}

// env is one Berth node: a real store, the local repositories and the
// registry server in front of proxy.NewMirror, under httptest.
type env struct {
	t       *testing.T
	dir     string
	o       envOptions
	clock   *testclock.Clock
	store   *store.Store
	repos   *local.Repos
	reclaim *reclaim.Reclaimer
	proxy   *proxy.Proxy
	srv     *httptest.Server
	client  *http.Client
	log     *zap.Logger
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), o: o, clock: testclock.New(),
		log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	e.start()
	t.Cleanup(e.stop)
	return e
}

// start opens the store and starts the server over it.
func (e *env) start() {
	e.t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, e.dir, store.Options{Logger: e.log, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	var ups []*upstream.Upstream
	if e.o.cachedPrefix {
		u, err := upstream.New(upstream.Rule{Name: "hub", Prefix: "hub", Registry: "hub.example", URL: "http://127.0.0.1:1"}, nil, e.log)
		if err != nil {
			e.t.Fatal(err)
		}
		ups = append(ups, u)
	}
	e.proxy = proxy.New(st, upstream.Fixed(upstream.NewRouter(ups)), proxy.Options{Logger: e.log})
	e.reclaim = reclaim.New(st, reclaim.Options{Logger: e.log, Now: e.clock.Now})
	e.repos = local.New(st, local.Options{
		AutoCreate:        !e.o.manualCreate,
		DefaultMutability: e.o.defaultMutability,
		Logger:            e.log,
		Now:               e.clock.Now,
		Reclaim:           e.reclaim,
	})
	e.srv = httptest.NewServer(registry.New(mirror.New(e.proxy, e.repos, st, mirror.Options{}), registry.WithLogger(e.log)))
	e.client = &http.Client{Transport: &http.Transport{}}
}

// stop closes the server, the proxy and the store; start reopens them.
func (e *env) stop() {
	if e.store == nil {
		return
	}
	e.client.CloseIdleConnections()
	e.srv.Close()
	e.proxy.Close()
	if err := e.store.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
	e.store = nil
}

// do sends a request to the node; hdr is key, value pairs.
func (e *env) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
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
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// wantStatus checks a status and returns the body for further checks.
func wantStatus(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d (body %s)", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
}

// wantError checks an OCI error response and returns its message.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) string {
	t.Helper()
	wantStatus(t, resp, body, status)
	if resp.Request.Method == http.MethodHead {
		return ""
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

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// blob is a blob with its bytes.
type blob struct {
	data []byte
	desc desc
}

func newBlob(mediaType string, data []byte) blob {
	return blob{data: data, desc: desc{MediaType: mediaType, Digest: digestOf(data), Size: int64(len(data))}}
}

// randomBytes returns n bytes that differ per name.
func randomBytes(name string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, i)))
		b.Write(sum[:])
	}
	return b.Bytes()[:n]
}

// desc is an OCI descriptor.
type desc = oci.Descriptor

// manifest is an OCI image manifest or index.
type manifest oci.Manifest

func (m manifest) bytes() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// image is a pushed (or pushable) image: its manifest and blobs.
type image struct {
	config blob
	layers []blob
	body   []byte
	digest string
}

func (im image) desc() desc {
	return desc{MediaType: ociManifest, Digest: im.digest, Size: int64(len(im.body))}
}

// blobs returns the config and layers.
func (im image) blobs() []blob { return append([]blob{im.config}, im.layers...) }

// newImage builds an OCI image with a config and nLayers layers whose
// bytes derive from name.
func newImage(name string, nLayers int) image {
	im := image{config: newBlob(ociConfig, []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","name":%q}`, name)))}
	for i := range nLayers {
		im.layers = append(im.layers, newBlob(ociLayer, randomBytes(fmt.Sprintf("%s/layer%d", name, i), 1000+100*i)))
	}
	return im.withManifest(nil)
}

// withLayers builds an image from given blobs.
func imageOf(config blob, layers ...blob) image {
	return image{config: config, layers: layers}.withManifest(nil)
}

// withManifest (re)computes the manifest, with an optional edit.
func (im image) withManifest(edit func(*manifest)) image {
	cfg := im.config.desc
	m := manifest{SchemaVersion: 2, MediaType: ociManifest, Config: &cfg}
	for _, l := range im.layers {
		m.Layers = append(m.Layers, l.desc)
	}
	if edit != nil {
		edit(&m)
	}
	im.body = m.bytes()
	im.digest = digestOf(im.body)
	return im
}

// pushBlob uploads data to repo in one POST.
func (e *env) pushBlob(repo string, data []byte) string {
	e.t.Helper()
	d := digestOf(data)
	resp, body := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, data,
		"Content-Type", "application/octet-stream")
	wantStatus(e.t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		e.t.Fatalf("pushed blob digest %s, want %s", got, d)
	}
	return d
}

// putManifest PUTs a manifest body under ref.
func (e *env) putManifest(repo, ref, mediaType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", mediaType)
}

// push uploads an image's blobs and PUTs its manifest under ref, which
// must succeed.
func (e *env) push(repo, ref string, im image) {
	e.t.Helper()
	for _, b := range im.blobs() {
		e.pushBlob(repo, b.data)
	}
	e.pushManifest(repo, ref, im)
}

// pushManifest PUTs an image's manifest only, which must succeed.
func (e *env) pushManifest(repo, ref string, im image) {
	e.t.Helper()
	resp, body := e.putManifest(repo, ref, ociManifest, im.body)
	wantStatus(e.t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != im.digest {
		e.t.Fatalf("pushed manifest digest %s, want %s", got, im.digest)
	}
}

// getManifest GETs a manifest and checks that it is 200; it returns the
// digest header and the body.
func (e *env) getManifest(repo, ref string) (string, []byte) {
	e.t.Helper()
	resp, body := e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil,
		"Accept", strings.Join([]string{ociManifest, ociIndex}, ", "))
	wantStatus(e.t, resp, body, http.StatusOK)
	d := resp.Header.Get("Docker-Content-Digest")
	if d != digestOf(body) && !strings.HasPrefix(d, "sha512:") {
		e.t.Fatalf("GET %s:%s: Docker-Content-Digest %s but the body hashes to %s", repo, ref, d, digestOf(body))
	}
	return d, body
}

// wantBlob checks that repo serves want at its digest.
func (e *env) wantBlob(repo string, want []byte) {
	e.t.Helper()
	d := digestOf(want)
	resp, body := e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d, nil)
	wantStatus(e.t, resp, body, http.StatusOK)
	if !bytes.Equal(body, want) {
		e.t.Fatalf("GET %s blob %s: %d bytes that differ from the %d pushed", repo, d, len(body), len(want))
	}
}

// headBlob returns the status of a HEAD of a blob.
func (e *env) headBlob(repo, d string) int {
	e.t.Helper()
	resp, _ := e.do(http.MethodHead, "/v2/"+repo+"/blobs/"+d, nil)
	return resp.StatusCode
}

// inStore reports whether the store still indexes a blob.
func (e *env) inStore(d string) bool {
	e.t.Helper()
	_, err := e.store.StatBlob(context.Background(), d)
	if err != nil && err != store.ErrNotFound {
		e.t.Fatal(err)
	}
	return err == nil
}

// blobFiles counts the files under the store's blobs/ directory that hold
// digest d ("" counts them all).
func (e *env) blobFiles(d string) int {
	e.t.Helper()
	hx := strings.TrimPrefix(d, "sha256:")
	n := 0
	err := filepath.WalkDir(filepath.Join(e.dir, "blobs"), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() && (d == "" || de.Name() == hx) {
			n++
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// uploadFiles lists the files in the store's uploads/ directory.
func (e *env) uploadFiles() []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dir, "uploads"))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

// cacheBlob stores data as a pull through the cache would: written with a
// BlobWriter and linked to the cached repository name of upstream hub.
func (e *env) cacheBlob(name string, data []byte) string {
	e.t.Helper()
	ctx := context.Background()
	d := digestOf(data)
	w, err := e.store.NewBlobWriter(ctx, d, int64(len(data)))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		e.t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
	b := e.store.NewBatch()
	if err := b.Link(store.CachedKey("hub", name), d); err != nil {
		b.Close()
		e.t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// createRepo creates a repository directly.
func (e *env) createRepo(name, mutability string, exclusions ...string) {
	e.t.Helper()
	if _, err := e.repos.CreateRepository(context.Background(), name, mutability, exclusions); err != nil {
		e.t.Fatal(err)
	}
}

// tags lists a repository's tags over HTTP.
func (e *env) tags(repo string) []string {
	e.t.Helper()
	resp, body := e.do(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
	wantStatus(e.t, resp, body, http.StatusOK)
	var tl struct{ Tags []string }
	if err := json.Unmarshal(body, &tl); err != nil {
		e.t.Fatal(err)
	}
	return tl.Tags
}

// with returns the env reporting to t (for subtests).
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}
