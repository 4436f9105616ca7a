package reclaim

import (
	"context"
	"errors"
	"testing"
	"time"

	"berth/store"
)

// Eviction and garbage collection take a blob's visibility records with
// it: a blob stored again later (pushed, or fetched for another route) is
// visible nowhere it was before until it is linked again.
func TestDeletersDropVisibilityRecords(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	hub, other := store.CachedKey("hub", "library/a"), store.CachedKey("hub", "library/b")
	app := store.LocalKey("private/app")
	put := func(data string, o *store.Origin) string {
		t.Helper()
		d := f.blob(data).Digest.String()
		if o != nil {
			b := f.st.NewBatch()
			defer b.Close()
			if err := b.LinkOrigin(*o, d); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	sees := func(repo store.RepoKey, d string) bool {
		t.Helper()
		_, err := f.st.Visible(ctx, repo, d)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	cached := put("cached by digest alone", &store.Origin{Repo: hub, Shared: true})
	if !sees(other, cached) {
		t.Fatal("a shared origin is not seen by the rule's other repository")
	}
	// A local blob deleted from its repository, for GC.
	pushed := put("pushed then deleted", nil)
	b := f.st.NewBatch()
	if err := b.Link(app, pushed); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlink(app, pushed); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}

	if rep, err := f.r.Evict(ctx, 0, nil); err != nil || rep.BlobsEvicted != 1 {
		t.Fatalf("evict: %+v %v", rep, err)
	}
	if rep, err := f.r.GC(ctx, -time.Hour); err != nil || rep.BlobsDeleted != 1 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	for _, d := range []string{put("cached by digest alone", nil), put("pushed then deleted", nil)} {
		for _, repo := range []store.RepoKey{hub, other, app} {
			if sees(repo, d) {
				t.Errorf("%s sees %s, stored again after its deletion", repo, d)
			}
		}
	}
	var links int
	if err := f.st.Sweep().Links(ctx, func(store.RepoKey, string, bool) error { links++; return nil }); err != nil {
		t.Fatal(err)
	}
	if links != 0 {
		t.Errorf("%d link records survived their blobs", links)
	}
}
