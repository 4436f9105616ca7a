package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"berth/internal/oci"
)

// The tests of this file check the image cache (imageType) from outside:
// what RepoManifest answers after each write or delete of image records,
// and how many pebble reads it takes.

// icBody is the manifest the tests store.
var icBody = []byte(`{"schemaVersion":2,"config":{}}`)

// icPut stores icBody with an image record of media type mt in repo, as
// a push or a pull through the cache does, and waits until it is hot.
func icPut(t *testing.T, s *Store, repo RepoKey, mt string) string {
	t.Helper()
	d := stSHA256(icBody)
	b := s.NewBatch()
	defer b.Close()
	if err := b.PutManifest(d, &Manifest{MediaType: oci.MediaTypeImageManifest, Body: icBody}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutImage(repo, d, Image{PushedAt: time.Now(), MediaType: mt}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	s.hot.Wait()
	return d
}

// icDelete deletes repo's image record of d in a batch.
func icDelete(t *testing.T, s *Store, repo RepoKey, d string) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	if err := b.DeleteImage(repo, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// icReads counts the store's pebble point reads from now on.
func icReads(s *Store) *atomic.Int64 {
	var n atomic.Int64
	h := func([]byte) { n.Add(1) }
	s.readHook.Store(&h)
	return &n
}

// icServes fails the test unless repo's RepoManifest of d is icBody under
// media type mt.
func icServes(t *testing.T, s *Store, repo RepoKey, d, mt string) {
	t.Helper()
	m, err := s.RepoManifest(context.Background(), repo, d)
	if err != nil || m.MediaType != mt || !bytes.Equal(m.Body, icBody) {
		t.Fatalf("%s: RepoManifest = %+v, %v; want the manifest as %s", repo, m, err, mt)
	}
}

// icGone fails the test unless repo's RepoManifest of d is ErrNotFound.
func icGone(t *testing.T, s *Store, repo RepoKey, d, after string) {
	t.Helper()
	if m, err := s.RepoManifest(context.Background(), repo, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after %s, %s still serves %s: %+v, %v", after, repo, d, m, err)
	}
}

// TestRepoManifestReadsPebbleOnce: a repeated manifest GET of a warm
// image reads nothing from pebble; a pass over the store (Sweep) does not
// fill the cache.
func TestRepoManifestReadsPebbleOnce(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	hub, app := CachedKey("hub", "library/a"), LocalKey("private/app")
	d := icPut(t, s, hub, oci.MediaTypeImageManifest)
	icPut(t, s, app, oci.MediaTypeDockerManifest)
	reads := icReads(s)
	if _, err := s.Sweep().RepoManifest(ctx, hub, d); err != nil {
		t.Fatal(err)
	}
	if n := reads.Swap(0); n != 1 {
		t.Fatalf("a sweep's RepoManifest read pebble %d times, want 1 (the image record)", n)
	}
	for range 3 {
		icServes(t, s, hub, d, oci.MediaTypeImageManifest)
		icServes(t, s, app, d, oci.MediaTypeDockerManifest)
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("three GETs in two repositories read pebble %d times; want 2, their first", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { icServes(t, s, hub, d, oci.MediaTypeImageManifest) }); allocs != 0 {
		t.Errorf("a repeated GET allocates %.0f times", allocs)
	}
}

// TestImageCacheEntryBytes: imageEntryBytes is the heap an image cache
// entry takes (its key, and its share of the map, full), within a
// quarter, and a full cache stays within 20 MB.
func TestImageCacheEntryBytes(t *testing.T) {
	var c readCache[string]
	keys := make([][]byte, maxCached)
	for i := range keys {
		// A cached repository's key, as large as most: an upstream
		// rule, an organization and a name, and a sha256 digest.
		repo := CachedKey("docker-hub", fmt.Sprintf("library/app%d", i%1000))
		keys[i] = imageKey(repo, fmt.Sprintf("sha256:%064x", i))
	}
	mt := []byte(oci.MediaTypeImageManifest)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for _, k := range keys {
		_, _, gen := c.get(k)
		c.cacheRead(k, mediaType(mt), gen)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	perEntry := float64(ms.HeapAlloc-before) / maxCached
	if c.len() != maxCached {
		t.Fatalf("%d entries cached, want %d", c.len(), maxCached)
	}
	if perEntry > imageEntryBytes*1.25 || perEntry < imageEntryBytes*0.75 {
		t.Errorf("an entry with a %d-byte key takes %.0f bytes of heap; imageEntryBytes says %d", len(keys[0]), perEntry, imageEntryBytes)
	}
	if full := perEntry * maxCached; full > 20e6 {
		t.Errorf("a full image cache holds %.1f MB", full/1e6)
	}
	runtime.KeepAlive(keys)
}

// TestImageCacheDeletes: an image deleted from a repository, by a batch
// (deletes of images, eviction and lifecycle expiry) or with its
// repository, is not found at once by a GET that had it cached; other
// repositories keep theirs.
func TestImageCacheDeletes(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	app, sibling, hub := LocalKey("team/app"), LocalKey("team/app2"), CachedKey("hub", "team/app")
	for _, r := range []string{app.Name, sibling.Name} {
		if err := s.PutRepository(ctx, &Repository{Name: r, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var d string
	for _, r := range []RepoKey{app, sibling, hub} {
		d = icPut(t, s, r, oci.MediaTypeImageManifest)
		icServes(t, s, r, d, oci.MediaTypeImageManifest) // cached
	}
	icDelete(t, s, hub, d)
	icGone(t, s, hub, d, "a batch's DeleteImage")
	icServes(t, s, app, d, oci.MediaTypeImageManifest)

	if err := s.PurgeRepository(ctx, app.Name); err != nil {
		t.Fatal(err)
	}
	icGone(t, s, app, d, "deleting the repository")
	icServes(t, s, sibling, d, oci.MediaTypeImageManifest)
}

// TestImageCacheReadRacingDelete: a GET that read an image record before
// a delete committed does not leave it cached, whether it began before
// the delete's batch took the record or after.
func TestImageCacheReadRacingDelete(t *testing.T) {
	for _, tt := range []struct {
		name string
		// The delete's DeleteImage runs before the GET reads (early) or
		// once it has read, then the commit.
		early bool
	}{
		{"read before the batch", false},
		{"read before the commit", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := stOpen(t, t.TempDir())
			repo := CachedKey("hub", "library/a")
			d := icPut(t, s, repo, oci.MediaTypeImageManifest)
			read, resume := make(chan struct{}), make(chan struct{})
			var armed atomic.Bool
			armed.Store(true)
			h := func(key []byte) {
				if bytes.HasPrefix(key, prefixImage) && armed.CompareAndSwap(true, false) {
					close(read)
					<-resume
				}
			}
			b := s.NewBatch()
			defer b.Close()
			del := func() {
				if err := b.DeleteImage(repo, d); err != nil {
					t.Fatal(err)
				}
			}
			if tt.early {
				del()
			}
			s.readHook.Store(&h)
			got := make(chan error)
			go func() {
				_, err := s.RepoManifest(context.Background(), repo, d)
				got <- err
			}()
			<-read // the GET has read the record
			if !tt.early {
				del()
			}
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
			close(resume)
			if err := <-got; err != nil {
				t.Fatalf("the GET that read the record before the delete: %v", err)
			}
			icGone(t, s, repo, d, "a delete that a GET raced")
		})
	}
}

// TestImageCachePutImage: a new image record, or one rewritten with
// another media type, is seen at once.
func TestImageCachePutImage(t *testing.T) {
	s := stOpen(t, t.TempDir())
	a, b := LocalKey("team/a"), LocalKey("team/b")
	d := icPut(t, s, a, oci.MediaTypeDockerManifest)
	icServes(t, s, a, d, oci.MediaTypeDockerManifest)
	icGone(t, s, b, d, "storing the image in another repository")
	icPut(t, s, a, oci.MediaTypeImageManifest)
	icServes(t, s, a, d, oci.MediaTypeImageManifest)
	icPut(t, s, b, "application/x-other")
	icServes(t, s, b, d, "application/x-other")
}
