// Package admintest runs the admin API over a real store and local
// repositories in a temporary directory, for the tests of the API and of
// the command-line client.
package admintest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"berth/admin"
	"berth/config"
	"berth/internal/oci"
	"berth/local"
	"berth/reclaim"
	"berth/registry"
	"berth/scan"
	"berth/store"
	"berth/syncer"
	"berth/upstream"
	"berth/vulndb"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Media types of the images built here.
const (
	MediaManifest = oci.MediaTypeImageManifest
	MediaIndex    = oci.MediaTypeImageIndex
	MediaConfig   = "application/vnd.oci.image.config.v1+json"
	MediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Clock is a settable clock, used for push times, for lifecycle
// evaluation and for the schedule of describe-cache's counts. It stands
// still, or runs (NewInProcess).
type Clock struct {
	mu sync.Mutex
	t  time.Time
	// since, on a running clock, is when t was set: the clock reads t
	// and the time.Now passed since.
	since time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.since.IsZero() {
		return c.t
	}
	return c.t.Add(time.Since(c.since))
}

// Set sets the clock; a running clock runs on from t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	if !c.since.IsZero() {
		c.since = time.Now()
	}
	c.mu.Unlock()
}

// Counters is a settable admin.StatsSource.
type Counters struct {
	mu sync.Mutex
	c  admin.CacheCounters
}

// Set sets the counters.
func (c *Counters) Set(v admin.CacheCounters) {
	c.mu.Lock()
	c.c = v
	c.mu.Unlock()
}

// CacheCounters implements admin.StatsSource.
func (c *Counters) CacheCounters() admin.CacheCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// Epoch is the clock's initial time: far enough ahead that blobs the
// store dates with the real clock are older than it, for garbage collection.
var Epoch = time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC)

// Node is a store, its local repositories and the admin API over them,
// served by an httptest server. Its upstreams (never contacted) are
// docker-hub (prefix docker-hub, the default) and quay (prefix quay);
// names under private/ are local.
type Node struct {
	T        testing.TB
	Dir      string
	Store    *store.Store
	Repos    *local.Repos
	Reclaim  *reclaim.Reclaimer
	Router   *upstream.Router
	Service  *admin.Service
	Server   *httptest.Server
	Clock    *Clock
	Counters *Counters
	Rules    []upstream.Rule
	// VulnDB is the vulnerability database (empty until imported).
	VulnDB *vulndb.DB
	// Scanner scans images against VulnDB.
	Scanner *scan.Scanner
}

// New starts a node, its clock standing at Epoch; it stops when the test
// ends.
func New(t testing.TB) *Node {
	t.Helper()
	n := newNode(t, &Clock{t: Epoch})
	mux := http.NewServeMux()
	mux.Handle("/", n.Service.Handler())
	mux.Handle("POST "+admin.Prefix+"import-vulndb", n.Service.ImportVulnDBHandler())
	n.Server = httptest.NewServer(mux)
	t.Cleanup(n.Server.Close)
	return n
}

// NewInProcess starts a node for a test inside a testing/synctest bubble
// (call it there): Call and OK serve in-process, without the HTTP server
// whose connections would keep synctest.Wait from returning, and the clock
// runs from Epoch with the bubble's. The test runs what the daemon would
// in the background (Service.Run).
func NewInProcess(t testing.TB) *Node {
	t.Helper()
	return newNode(t, &Clock{t: Epoch, since: time.Now()})
}

// newNode opens a node's store and builds its parts over it.
func newNode(t testing.TB, clock *Clock) *Node {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	n := &Node{T: t, Dir: t.TempDir(), Clock: clock, Counters: &Counters{}}
	// Everything is encrypted at rest, so every admin test runs over an
	// encrypted store; rotate-key reads raw 32-byte key files.
	enc := &store.Encryption{Key: bytes.Repeat([]byte{0x5a}, store.KeySize), KeyFile: "admintest.key", All: true, ReadKey: os.ReadFile}
	st, err := store.Open(context.Background(), n.Dir, store.Options{Logger: log, Encryption: enc})
	if err != nil {
		t.Fatal(err)
	}
	n.Store = st
	n.Rules = []upstream.Rule{
		{Name: "docker-hub", Prefix: "docker-hub", Registry: "docker.io", URL: "http://127.0.0.1:1", Default: true},
		{Name: "quay", Prefix: "quay", Registry: "quay.io", URLs: []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}},
	}
	var ups []*upstream.Upstream
	for i, r := range n.Rules {
		n.Rules[i] = r.WithDefaults()
		u, err := upstream.New(n.Rules[i], nil, log)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, u)
	}
	n.Router = upstream.NewRouter(ups, "private")
	n.Reclaim = reclaim.New(st, reclaim.Options{Logger: log, Now: n.Clock.Now})
	n.Repos = local.New(st, local.Options{AutoCreate: true, Logger: log, Now: n.Clock.Now, Reclaim: n.Reclaim})
	live := admin.Live{Router: n.Router, ConfigRules: n.Rules, LocalPrefixes: []string{"private"},
		Pinned: func(up, repo, digest string) bool { return n.Service.StoredPin(context.Background(), up, repo, digest) }}
	if n.VulnDB, err = vulndb.Open(context.Background(), vulndb.Options{Store: st, Logger: log}); err != nil {
		t.Fatal(err)
	}
	n.Scanner, err = scan.New(scan.Options{Store: st, DB: n.VulnDB, TempDir: t.TempDir(), Logger: log,
		Settings: func() config.Scanning { return config.Default().Scanning }})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Scanner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Service = admin.New(admin.Options{Store: st, Repos: n.Repos, Reclaim: n.Reclaim, Live: func() admin.Live { return live }, Stats: n.Counters,
		Now: n.Clock.Now, Logger: log, Sync: syncer.New(syncer.Options{Rules: func() []config.SyncRule { return nil }, Store: st}),
		VulnDB: n.VulnDB, Scan: admin.ScanOptions{Scanner: n.Scanner, Tags: st},
		RotateKey: func(ctx context.Context, file string) (store.Rotation, error) {
			key, err := os.ReadFile(file)
			if err != nil {
				return store.Rotation{}, err
			}
			return st.RotateKey(ctx, key, file)
		}})
	t.Cleanup(func() {
		n.Service.Close()
		n.Scanner.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return n
}

// URL is the admin API's base URL (New).
func (n *Node) URL() string { return n.Server.URL }

// Call posts req (JSON) to /admin/v1/<verb> and returns the status and
// body; without a server (NewInProcess), to the Service's handler.
func (n *Node) Call(verb string, req any) (int, []byte) {
	n.T.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		n.T.Fatal(err)
	}
	if n.Server == nil {
		hr := httptest.NewRequest(http.MethodPost, admin.Prefix+verb, bytes.NewReader(b))
		hr.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		n.Service.Handler().ServeHTTP(w, hr)
		return w.Code, w.Body.Bytes()
	}
	hr, err := http.NewRequest(http.MethodPost, n.Server.URL+admin.Prefix+verb, bytes.NewReader(b))
	if err != nil {
		n.T.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := n.Server.Client().Do(hr)
	if err != nil {
		n.T.Fatalf("%s: %v", verb, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		n.T.Fatal(err)
	}
	return resp.StatusCode, body
}

// OK calls verb, requires 200 and decodes the answer into resp.
func (n *Node) OK(verb string, req, resp any) {
	n.T.Helper()
	status, body := n.Call(verb, req)
	if status != http.StatusOK {
		n.T.Fatalf("%s: status %d: %s", verb, status, body)
	}
	if resp != nil {
		if err := json.Unmarshal(body, resp); err != nil {
			n.T.Fatalf("%s: %v in %s", verb, err, body)
		}
	}
}

// Blob is a blob's bytes and descriptor.
type Blob struct {
	Data []byte
	Desc Descriptor
}

// Descriptor is an OCI descriptor.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Image is an image manifest or index with its blobs.
type Image struct {
	Blobs  []Blob
	Body   []byte
	Type   string
	Digest string
	// Size is the config and layer bytes (of an index: of its children).
	Size int64
	// Children of an index.
	Children []Image
}

// Digest is the sha256 digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newBlob(mt string, data []byte) Blob {
	return Blob{Data: data, Desc: Descriptor{MediaType: mt, Digest: Digest(data), Size: int64(len(data))}}
}

// NewImage builds an image with a config and layers whose bytes derive
// from name; layer i has 100+10*i bytes.
func NewImage(name string, layers int) Image {
	cfg := newBlob(MediaConfig, []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","name":%q}`, name)))
	im := Image{Blobs: []Blob{cfg}, Type: MediaManifest, Size: cfg.Desc.Size}
	var ls []Descriptor
	for i := range layers {
		data := bytes.Repeat([]byte(fmt.Sprintf("%s/%d;", name, i)), 1+(100+10*i)/len(fmt.Sprintf("%s/%d;", name, i)))[:100+10*i]
		b := newBlob(MediaLayer, data)
		im.Blobs = append(im.Blobs, b)
		im.Size += b.Desc.Size
		ls = append(ls, b.Desc)
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaManifest, "config": cfg.Desc, "layers": ls})
	im.Body, im.Digest = body, Digest(body)
	return im
}

// NewIndex builds an index of children.
func NewIndex(children ...Image) Image {
	im := Image{Type: MediaIndex, Children: children}
	var ms []Descriptor
	for _, c := range children {
		ms = append(ms, Descriptor{MediaType: c.Type, Digest: c.Digest, Size: int64(len(c.Body))})
		im.Size += c.Size
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaIndex, "manifests": ms})
	im.Body, im.Digest = body, Digest(body)
	return im
}

// Push pushes an image (an index with its children first) to a local
// repository at time at, under tags (by digest when none).
func (n *Node) Push(repo string, at time.Time, im Image, tags ...string) string {
	n.T.Helper()
	ctx := context.Background()
	for _, c := range im.Children {
		n.Push(repo, at, c)
	}
	for _, b := range im.Blobs {
		u, err := n.Repos.StartUpload(ctx, registry.Repo{Name: repo})
		if err != nil {
			n.T.Fatal(err)
		}
		if _, err := u.Append(ctx, bytes.NewReader(b.Data)); err != nil {
			n.T.Fatal(err)
		}
		if err := u.Commit(ctx, registry.Digest(b.Desc.Digest)); err != nil {
			n.T.Fatal(err)
		}
	}
	prev := n.Clock.Now()
	n.Clock.Set(at)
	defer n.Clock.Set(prev)
	put := registry.ManifestPut{Repo: registry.Repo{Name: repo}, MediaType: im.Type, Body: im.Body}
	if len(tags) == 0 {
		put.Reference, put.Digest = im.Digest, registry.Digest(im.Digest)
	} else {
		put.Reference, put.Tags = tags[0], tags[1:]
	}
	if _, err := n.Repos.PutManifest(ctx, put); err != nil {
		n.T.Fatalf("push %s to %s: %v", im.Digest, repo, err)
	}
	return im.Digest
}

// Cache stores an image as a pull through upstream up would: its blobs
// linked to the cached repository, its manifest and image record (cached
// at time at) and its tags.
func (n *Node) Cache(up, repo string, at time.Time, im Image, tags ...string) string {
	n.T.Helper()
	ctx := context.Background()
	for _, c := range im.Children {
		n.Cache(up, repo, at, c)
	}
	key := store.CachedKey(up, repo)
	for _, b := range im.Blobs {
		if _, err := n.Store.StatBlob(ctx, b.Desc.Digest); err != nil {
			w, err := n.Store.NewBlobWriter(ctx, b.Desc.Digest, b.Desc.Size)
			if err != nil {
				n.T.Fatal(err)
			}
			if _, err := w.Write(b.Data); err != nil {
				w.Abort()
				n.T.Fatal(err)
			}
			if err := w.Commit(ctx); err != nil {
				n.T.Fatal(err)
			}
		}
	}
	bt := n.Store.NewBatch()
	defer bt.Close()
	for _, b := range im.Blobs {
		if err := bt.Link(key, b.Desc.Digest); err != nil {
			n.T.Fatal(err)
		}
	}
	if err := bt.PutManifest(im.Digest, &store.Manifest{MediaType: im.Type, Body: im.Body}); err != nil {
		n.T.Fatal(err)
	}
	if err := bt.PutImage(key, im.Digest, store.Image{PushedAt: at.UTC()}); err != nil {
		n.T.Fatal(err)
	}
	for _, tag := range tags {
		if err := bt.PutTag(up, repo, tag, store.Tag{Digest: im.Digest, FetchedAt: at}); err != nil {
			n.T.Fatal(err)
		}
	}
	if err := bt.Commit(); err != nil {
		n.T.Fatal(err)
	}
	return im.Digest
}

// Pulled records a pull of an image at time at. key is the repository's
// store key: store.LocalKey(name) or store.CachedKey(upstream, name).
func (n *Node) Pulled(key store.RepoKey, digest string, at time.Time) {
	n.T.Helper()
	ctx := context.Background()
	im, err := n.Store.GetImage(ctx, key, digest)
	if err != nil {
		n.T.Fatal(err)
	}
	im.LastPulledAt = at.UTC()
	bt := n.Store.NewBatch()
	defer bt.Close()
	if err := bt.PutImage(key, digest, im); err != nil {
		n.T.Fatal(err)
	}
	if err := bt.Commit(); err != nil {
		n.T.Fatal(err)
	}
}

// HasBlob reports whether the store holds a blob.
func (n *Node) HasBlob(d string) bool {
	n.T.Helper()
	_, err := n.Store.StatBlob(context.Background(), d)
	if err != nil && err != store.ErrNotFound {
		n.T.Fatal(err)
	}
	return err == nil
}

// HasManifest reports whether the store holds a manifest.
func (n *Node) HasManifest(d string) bool {
	n.T.Helper()
	_, err := n.Store.GetManifest(context.Background(), d)
	if err != nil && err != store.ErrNotFound {
		n.T.Fatal(err)
	}
	return err == nil
}
