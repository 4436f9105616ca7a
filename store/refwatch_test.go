package store

import (
	"slices"
	"testing"
	"time"
)

// TestWatchRecordsWhatWritesReference: a watch hears of every write that
// makes content referenced between its start and its Close (a fill's
// commit, a manifest pull's batch, a confirmation's link), each once, and
// of nothing before or after.
func TestWatchRecordsWhatWritesReference(t *testing.T) {
	s := stOpen(t, t.TempDir())
	repo := CachedKey("hub", "team/a")
	before := stCommit(t, s, []byte("committed before the watch"), &Origin{Repo: repo})
	w := s.Watch()
	filled := stCommit(t, s, []byte("filled"), &Origin{Repo: repo})
	body := []byte(`{"schemaVersion":2}`)
	m := stSHA256(body)
	b := s.NewBatch()
	defer b.Close()
	for _, err := range []error{
		b.PutManifest(m, &Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body}),
		b.PutImage(repo, m, Image{PushedAt: time.Now()}),
		b.LinkOrigin(Origin{Repo: repo}, before),
		b.Commit(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, release := w.Hold()
	release()
	if !slices.Equal(got.Blobs, []string{filled, before}) {
		t.Errorf("blobs %v, want the fill's then the linked one", got.Blobs)
	}
	if !slices.Contains(got.Manifests, m) || len(got.Images) != 1 || got.Images[0] != (ImageKey{repo, m}) {
		t.Errorf("manifests %v images %v, want %s with its image record", got.Manifests, got.Images, m)
	}
	got, release = w.Hold()
	release()
	if !got.empty() {
		t.Errorf("a second Hold repeated %+v", got)
	}
	w.Close()
	stCommit(t, s, []byte("after the watch"), &Origin{Repo: repo})
	got, release = w.Hold()
	release()
	if !got.empty() {
		t.Errorf("a closed watch recorded %+v", got)
	}
}
