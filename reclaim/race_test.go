package reclaim

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"berth/internal/oci"
	"berth/registry"
	"berth/store"
)

// The tests of this file write, between a pass's walk and its deletions
// (the Planned hook), what a pull through the cache writes meanwhile: pulls
// do not wait for deleters. Each checks what a later pull of that content
// finds in the store with the upstream down: the manifest its repository
// sees, and every blob it lists, readable.

var hubC = store.CachedKey("hub", "team/c")

// onPlanned makes fn run once, when the next pass of f.r has planned.
func (f *fixture) onPlanned(fn func()) {
	f.r.planned = func() {
		f.r.planned = nil
		fn()
	}
}

// fill commits data as a fill for repo commits it: with repo's link, in
// one write.
func (f *fixture) fill(repo store.RepoKey, data string) string {
	f.t.Helper()
	ctx := context.Background()
	d := registry.FromBytes([]byte(data)).String()
	w, err := f.st.NewBlobWriter(ctx, d, int64(len(data)))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := w.Write([]byte(data)); err != nil {
		w.Abort()
		f.t.Fatal(err)
	}
	if err := w.CommitFor(ctx, store.Origin{Repo: repo}); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// pull gives repo an image record of manifest d, stored already, as a
// pull through the cache stores it (manifest, image record and tag in one
// batch), then links the blobs it lists to repo, as the pull's requests
// for them confirm them with the upstream.
func (f *fixture) pull(repo store.RepoKey, tag, d string) {
	f.t.Helper()
	m, err := f.st.GetManifest(context.Background(), d)
	if err != nil {
		f.t.Fatal(err)
	}
	b := f.st.NewBatch()
	defer b.Close()
	for _, err := range []error{
		b.PutManifest(d, m),
		b.PutImage(repo, d, store.Image{PushedAt: time.Now()}),
		b.PutTag(repo.Upstream, repo.Name, tag, store.Tag{Digest: d, FetchedAt: time.Now()}),
		b.Commit(),
	} {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		f.t.Fatal(err)
	}
	b = f.st.NewBatch()
	defer b.Close()
	for _, desc := range doc.Refs() {
		if err := b.LinkOrigin(store.Origin{Repo: repo}, desc.Digest); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		f.t.Fatal(err)
	}
}

// servable fails the test unless repo sees manifest d and can read every
// blob it lists: what a pull of it needs with the upstream down.
func (f *fixture) servable(repo store.RepoKey, d, what string) {
	f.t.Helper()
	ctx := context.Background()
	m, err := f.st.RepoManifest(ctx, repo, d)
	if err != nil {
		f.t.Errorf("%s: %s does not see manifest %s any more: %v", what, repo, d, err)
		return
	}
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		f.t.Fatal(err)
	}
	for _, desc := range doc.Refs() {
		f.readable(repo, desc.Digest, what)
	}
}

// readable fails the test unless repo sees blob d and its bytes read.
func (f *fixture) readable(repo store.RepoKey, d, what string) {
	f.t.Helper()
	ctx := context.Background()
	info, err := f.st.Visible(ctx, repo, d)
	if err != nil {
		f.t.Errorf("%s: %s does not see blob %s any more: %v", what, repo, d, err)
		return
	}
	rc, err := (&store.BlobFile{Store: f.st, Digest: d, Len: info.Size}).Open(ctx, 0)
	if err != nil {
		f.t.Errorf("%s: blob %s: %v", what, d, err)
		return
	}
	defer rc.Close()
	if n, err := io.Copy(io.Discard, rc); err != nil || n != info.Size {
		f.t.Errorf("%s: blob %s read %d of %d bytes: %v", what, d, n, info.Size, err)
	}
}

// TestEvictionKeepsWhatAPullStoresMeanwhile: an image pulled while an
// eviction runs, after its walk, sharing a layer with the image it
// evicts, keeps that layer; the evicted image's own layer goes.
func TestEvictionKeepsWhatAPullStoresMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	old := f.image(hubB, "v1", time.Now().Add(-time.Hour), "config b", "base", "layer of b")
	var pulled string
	f.onPlanned(func() {
		pulled = f.image(hubA, "v1", time.Now(), "config a", "base", "layer of a")
	})
	rep, err := f.r.Evict(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ImagesEvicted != 1 {
		t.Fatalf("evicted %+v, want the old image", rep)
	}
	f.servable(hubA, pulled, "an image pulled during an eviction")
	if f.blobs()[f.blob("layer of b").Digest.String()] {
		t.Error("the evicted image's own layer stayed")
	}
	if f.hasManifest(old) {
		t.Error("the evicted image's manifest stayed")
	}
}

// TestEvictionSkipsAnImagePulledMeanwhile: the least recently used image,
// pulled after the plan chose it, is no longer the least recently used:
// it stays whole, and eviction goes on to the next.
func TestEvictionSkipsAnImagePulledMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	oldest := f.image(hubB, "v1", time.Now().Add(-time.Hour), "config b", "layer of b")
	older := f.image(hubA, "v1", time.Now().Add(-30*time.Minute), "config a", "layer of a")
	f.onPlanned(func() {
		if err := f.st.TouchImage(ctx, hubB, oldest); err != nil {
			t.Fatal(err)
		}
	})
	rep, err := f.r.Evict(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ImagesEvicted != 1 {
		t.Fatalf("evicted %+v, want only the image not pulled meanwhile", rep)
	}
	f.servable(hubB, oldest, "an image pulled after eviction planned to evict it")
	if f.hasManifest(older) {
		t.Error("the image next in line stayed")
	}
}

// TestEvictionKeepsABlobFilledMeanwhile: blobs the plan counts as
// cached content no image needs become needed after the walk: one is
// filled again for another repository, the others are listed by a
// manifest pulled meanwhile. They stay.
func TestEvictionKeepsABlobFilledMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	refilled := f.fill(hubB, "pulled by digest")
	f.fill(hubB, "listed by a manifest pulled later")
	other := f.image(hubC, "v1", time.Now(), "config c", "listed by a manifest pulled later")
	if err := f.r.DeleteImage(ctx, hubC, other); err != nil { // its blobs are lone cached blobs now
		t.Fatal(err)
	}
	f.onPlanned(func() {
		f.fill(hubA, "pulled by digest")
		f.pull(hubA, "v1", other)
	})
	if _, err := f.r.Evict(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	f.readable(hubA, refilled, "a blob filled during an eviction")
	f.servable(hubA, other, "an image pulled during an eviction")
}

// TestExpiryKeepsWhatAPullStoresMeanwhile: the image lifecycle expires
// from one cached repository is pulled through another while the expiry
// reclaims its content: the other repository keeps manifest and blobs.
func TestExpiryKeepsWhatAPullStoresMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	d := f.image(hubB, "v1", time.Now().Add(-time.Hour), "config b", "base", "layer of b")
	f.onPlanned(func() {
		f.pull(hubA, "v1", d)
		f.fill(hubA, "config b")
	})
	rep, err := f.r.ExpireImages(ctx, []ImageRef{{Repo: ImageRepo{Key: hubB}, Digest: d}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ImagesExpired != 1 {
		t.Fatalf("expired %+v, want the one image", rep)
	}
	f.servable(hubA, d, "an image pulled while another repository's copy expired")
}

// TestGCKeepsWhatAPullStoresMeanwhile: a blob and a manifest no image
// needed when garbage collection walked the store become a cached
// repository's (a manifest pull, fills) before it deletes: they stay.
func TestGCKeepsWhatAPullStoresMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	d := f.image(appMy, "v1", time.Now(), "config", "layer")
	if err := f.r.DeleteImage(ctx, appMy, d); err != nil {
		t.Fatal(err)
	}
	f.onPlanned(func() {
		f.pull(hubA, "v1", d)
		f.fill(hubA, "config")
		f.fill(hubA, "layer")
	})
	if _, err := f.r.GC(ctx, 0); err != nil {
		t.Fatal(err)
	}
	f.servable(hubA, d, "an image pulled during garbage collection")
}
