package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// stCommit stores data as a blob with origin o (nil: linked nowhere).
func stCommit(t *testing.T, s *Store, data []byte, o *Origin) string {
	t.Helper()
	d := stSHA256(data)
	w, err := stWriteBlob(t, s, d, int64(len(data)), data, len(data))
	if err != nil {
		t.Fatal(err)
	}
	if o == nil {
		err = w.Commit(context.Background())
	} else {
		err = w.CommitFor(context.Background(), *o)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stSees(t *testing.T, s *Store, repo RepoKey, d string) bool {
	t.Helper()
	_, err := s.Visible(context.Background(), repo, d)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatalf("Visible(%s): %v", repo, err)
	}
	return err == nil
}

func TestVisibleBlobs(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	hubA, hubB := CachedKey("hub", "library/a"), CachedKey("hub", "library/b")
	privA, privB := CachedKey("priv", "team/a"), CachedKey("priv", "team/b")
	app, other := LocalKey("private/app"), LocalKey("private/other")

	shared := stCommit(t, s, []byte("from an anonymous rule"), &Origin{Repo: hubA, Shared: true})
	private := stCommit(t, s, []byte("from a rule with credentials"), &Origin{Repo: privA})
	pushed := stCommit(t, s, []byte("pushed"), nil)
	b := s.NewBatch()
	if err := b.Link(app, pushed); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// An older version's record: flags byte 1 marked it public.
	legacy := stCommit(t, s, []byte("old public blob"), nil)
	v, _ := s.get(blobKey(legacy))
	v[16] = 1
	if err := s.db.Set(blobKey(legacy), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	absent := stSHA256([]byte("never stored"))

	for _, tt := range []struct {
		repo RepoKey
		d    string
		want bool
	}{
		{hubA, shared, true}, {hubB, shared, true}, {privA, shared, false}, {app, shared, false},
		{privA, private, true}, {privB, private, false}, {hubA, private, false}, {app, private, false},
		{app, pushed, true}, {other, pushed, false}, {hubA, pushed, false},
		{hubA, legacy, false}, {app, legacy, false},
		{hubA, absent, false}, {app, absent, false},
	} {
		if got := stSees(t, s, tt.repo, tt.d); got != tt.want {
			t.Errorf("%s sees %s: %v, want %v", tt.repo, tt.d[:15], got, tt.want)
		}
	}

	// A deleted link hides the blob from that repository only.
	b = s.NewBatch()
	if err := b.Unlink(app, pushed); err != nil {
		t.Fatal(err)
	}
	if err := b.LinkOrigin(Origin{Repo: privB}, private); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if stSees(t, s, app, pushed) {
		t.Error("a deleted link still shows the blob")
	}
	if !stSees(t, s, privB, private) {
		t.Error("a confirmed link does not show the blob")
	}
	if err := s.NewBatch().LinkOrigin(Origin{Repo: app}, pushed); err == nil {
		t.Error("an origin in a local repository was accepted")
	}

	// Deleting a blob drops its links and origin records: stored again,
	// it is visible nowhere until linked again.
	if err := s.DeleteBlob(ctx, shared, []RepoKey{hubA}); err != nil {
		t.Fatal(err)
	}
	again := stCommit(t, s, []byte("from an anonymous rule"), nil)
	if again != shared {
		t.Fatal("digest changed")
	}
	if stSees(t, s, hubA, shared) || stSees(t, s, hubB, shared) {
		t.Error("a deleted blob's links or origin records survived")
	}
	if st := s.Stats(); st.Blobs != 4 {
		t.Errorf("blob count %d, want 4", st.Blobs)
	}
}

func TestRepoManifest(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	body := []byte(`{"schemaVersion":2}`)
	d := stSHA256(body)
	const oci, docker = "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"
	app, other, cached := LocalKey("private/app"), LocalKey("private/other"), CachedKey("hub", "library/a")
	put := func(repo RepoKey, mt string) {
		t.Helper()
		b := s.NewBatch()
		defer b.Close()
		if err := b.PutManifest(d, &Manifest{MediaType: mt, Body: body}); err != nil {
			t.Fatal(err)
		}
		if err := b.PutImage(repo, d, Image{PushedAt: time.Now(), MediaType: mt}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put(cached, oci)
	if _, err := s.RepoManifest(ctx, app, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("a repository without the image reads it: %v", err)
	}
	put(app, docker)
	for repo, want := range map[RepoKey]string{cached: oci, app: docker} {
		m, err := s.RepoManifest(ctx, repo, d)
		if err != nil || m.MediaType != want || string(m.Body) != string(body) {
			t.Errorf("%s: %+v %v, want type %s", repo, m, err, want)
		}
	}
	// An image record of an older version has no media type: the
	// manifest record's, the first writer's, applies.
	v := putTime(putTime(nil, time.Now()), time.Time{})
	if err := s.db.Set(imageKey(other, d), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if m, err := s.RepoManifest(ctx, other, d); err != nil || m.MediaType != oci {
		t.Errorf("old record: %+v %v, want %s", m, err, oci)
	}
	if err := s.PutManifest(ctx, d, &Manifest{MediaType: docker, Body: body}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetManifest(ctx, d); err != nil || m.MediaType != oci {
		t.Errorf("rewriting the manifest changed its type: %+v %v", m, err)
	}
	// TouchImage keeps the media type.
	if err := s.TouchImage(ctx, app, d); err != nil {
		t.Fatal(err)
	}
	if im, err := s.GetImage(ctx, app, d); err != nil || im.MediaType != docker || im.LastPulledAt.IsZero() {
		t.Errorf("after a touch: %+v %v", im, err)
	}
}
