package reclaim

import (
	"context"
	"errors"
	"testing"
	"time"

	"berth/store"
)

// TestDeletedImagesNotServedFromCache: each pass that deletes images (a
// delete of an image, lifecycle expiry, eviction, a delete of a
// repository) leaves them not found at once by a manifest GET that had
// them in the store's memory, and garbage collection then takes their
// manifests.
func TestDeletedImagesNotServedFromCache(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	old := time.Now().Add(-time.Hour)
	deleted, expired, gone := store.LocalKey("team/deleted"), store.LocalKey("team/expired"), store.LocalKey("team/gone")
	evicted := store.CachedKey("hub", "team/evicted")
	for _, r := range []store.RepoKey{deleted, expired, gone} {
		if err := f.st.PutRepository(ctx, &store.Repository{Name: r.Name, CreatedAt: old}); err != nil {
			t.Fatal(err)
		}
	}
	digests := map[store.RepoKey]string{}
	for _, r := range []store.RepoKey{deleted, expired, gone, evicted} {
		digests[r] = f.image(r, "v1", old, "config of "+r.Name, "layer of "+r.Name)
		for range 2 { // the second from memory
			if _, err := f.st.RepoManifest(ctx, r, digests[r]); err != nil {
				t.Fatal(err)
			}
		}
	}
	notServed := func(r store.RepoKey, after string) {
		t.Helper()
		if m, err := f.st.RepoManifest(ctx, r, digests[r]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after %s, %s still serves its image: %+v, %v", after, r, m, err)
		}
	}
	if err := f.r.DeleteImage(ctx, deleted, digests[deleted]); err != nil {
		t.Fatal(err)
	}
	notServed(deleted, "a delete of the image")
	rep, err := f.r.ExpireImages(ctx, []ImageRef{{Repo: LocalRepo(expired.Name), Digest: digests[expired]}})
	if err != nil || rep.ImagesExpired != 1 {
		t.Fatalf("expire: %+v, %v", rep, err)
	}
	notServed(expired, "lifecycle expiry")
	if rep, err := f.r.Evict(ctx, 0, nil); err != nil || rep.ImagesEvicted != 1 {
		t.Fatalf("evict: %+v, %v", rep, err)
	}
	notServed(evicted, "eviction")
	if _, err := f.r.DeleteRepository(ctx, gone.Name, true); err != nil {
		t.Fatal(err)
	}
	notServed(gone, "a delete of the repository")

	if _, err := f.r.GC(ctx, -time.Hour); err != nil {
		t.Fatal(err)
	}
	for r, d := range digests {
		notServed(r, "garbage collection")
		if f.hasManifest(d) {
			t.Errorf("garbage collection left the manifest of %s's deleted image", r)
		}
	}
}
