package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTouch(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	d := stDigest(1)
	if _, err := s.LastAccess(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LastAccess before Touch: %v", err)
	}
	for _, at := range []time.Time{time.Unix(1_700_000_000, 1), time.Unix(1_700_000_100, 999)} {
		s.now = func() time.Time { return at }
		if err := s.Touch(ctx, d); err != nil {
			t.Fatal(err)
		}
		got, err := s.LastAccess(ctx, d)
		if err != nil || !got.Equal(at) {
			t.Errorf("LastAccess = %s, %v; want %s", got, err, at)
		}
	}
}

// TestTouchWithinAMinute: accesses cost no store write until access times
// are flushed, yet every read of the access time sees the latest, so
// eviction orders images pulled seconds apart by their latest pull; a
// flush writes the latest, a pull before the image was recorded does not
// write one, and a reopened store has the latest (Close flushes).
func TestTouchWithinAMinute(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repo, d := CachedKey("hub", "library/app"), stDigest(1)
	t0 := time.Unix(1_700_000_000, 0)
	at := t0
	stOpenClose(t, dir, func(s *Store) {
		s.now = func() time.Time { return at }
		// A pull before the image is recorded is not written as one.
		if err := s.TouchImage(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
		if err := s.FlushAccessTimes(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.imageRecord(repo, d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a flush of a pull before the image wrote a record: %v", err)
		}
		b := s.NewBatch()
		if err := b.PutImage(repo, d, Image{PushedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		for i, step := range []time.Duration{time.Second, 20 * time.Second, 10 * time.Second} {
			at = at.Add(step)
			if err := s.TouchImage(ctx, repo, d); err != nil {
				t.Fatal(err)
			}
			if err := s.Touch(ctx, d); err != nil {
				t.Fatal(err)
			}
			if rec, err := s.imageRecord(repo, d); err != nil || !rec.LastPulledAt.IsZero() {
				t.Errorf("pull %d: the record's last pull is %s, %v before a flush; want none", i, rec.LastPulledAt, err)
			}
			im, err := s.GetImage(ctx, repo, d)
			if err != nil || !im.LastPulledAt.Equal(at) {
				t.Errorf("pull %d: GetImage's last pull %s, %v; want %s", i, im.LastPulledAt, err, at)
			}
			if all, err := s.ListImages(ctx, repo); err != nil || !all[d].LastPulledAt.Equal(at) {
				t.Errorf("pull %d: ListImages' last pull %s, %v; want %s", i, all[d].LastPulledAt, err, at)
			}
			if got, err := s.LastAccess(ctx, d); err != nil || !got.Equal(at) {
				t.Errorf("pull %d: LastAccess %s, %v; want %s", i, got, err, at)
			}
		}
		if err := s.FlushAccessTimes(ctx); err != nil {
			t.Fatal(err)
		}
		if rec, err := s.imageRecord(repo, d); err != nil || !rec.LastPulledAt.Equal(at) || !rec.PushedAt.Equal(t0) {
			t.Errorf("after a flush the record is %+v, %v; want pushed %s, last pulled %s", rec, err, t0, at)
		}
		if v, err := s.get(accessKey(d)); err != nil || !getTime(v).Equal(at) {
			t.Errorf("after a flush the blob's access record is %v, %v; want %s", v, err, at)
		}
		at = at.Add(5 * time.Second) // not flushed: Close writes it
		if err := s.TouchImage(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
	})
	stOpenClose(t, dir, func(s *Store) {
		if im, err := s.GetImage(ctx, repo, d); err != nil || !im.LastPulledAt.Equal(at) || !im.PushedAt.Equal(t0) {
			t.Errorf("after reopening: %+v, %v; want pushed %s, last pulled %s", im, err, t0, at)
		}
		if got, err := s.LastAccess(ctx, d); err != nil || !got.Equal(at.Add(-5*time.Second)) {
			t.Errorf("after reopening: LastAccess %s, %v; want %s", got, err, at.Add(-5*time.Second))
		}
	})
}

// stPutPulledImage stores image d of repo and records a pull of it.
func stPutPulledImage(t *testing.T, s *Store, repo RepoKey, d string) {
	t.Helper()
	b := s.NewBatch()
	if err := b.PutImage(repo, d, Image{PushedAt: time.Unix(1_700_000_000, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchImage(context.Background(), repo, d); err != nil {
		t.Fatal(err)
	}
}

// stDeleteImage deletes image d of repo.
func stDeleteImage(t *testing.T, s *Store, repo RepoKey, d string) {
	t.Helper()
	b := s.NewBatch()
	if err := b.DeleteImage(repo, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestAccessFlushKeepsDeletes: a flush of access times never brings back
// an image record or a blob's access time deleted after the pull.
func TestAccessFlushKeepsDeletes(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	repo := LocalKey("team/app")
	d := stDigest(1)
	stPutPulledImage(t, s, repo, d)
	stDeleteImage(t, s, repo, d)
	if err := s.FlushAccessTimes(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetImage(ctx, repo, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetImage after the delete and a flush: %v; want ErrNotFound", err)
	}
	if imgs, err := s.ListImages(ctx, repo); err != nil || len(imgs) != 0 {
		t.Errorf("ListImages after the delete and a flush: %v, %v; want none", imgs, err)
	}
}

// TestAccessTableBounded: past maxAccessEntries keys a flush writes them
// and the table drops them; reads then come from the store, unchanged.
func TestAccessTableBounded(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	at := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return at }
	n := 2*maxAccessEntries + 10
	for i := range n {
		if err := s.Touch(ctx, stDigest(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FlushAccessTimes(ctx); err != nil {
		t.Fatal(err)
	}
	s.access.mu.Lock()
	held := len(s.access.m)
	s.access.mu.Unlock()
	if held > 2*maxAccessEntries {
		t.Errorf("the table holds %d entries; want at most %d", held, 2*maxAccessEntries)
	}
	for _, i := range []int{0, maxAccessEntries, n - 1} {
		if got, err := s.LastAccess(ctx, stDigest(i)); err != nil || !got.Equal(at) {
			t.Errorf("LastAccess of digest %d: %s, %v; want %s", i, got, err, at)
		}
	}
}

// TestAccessFlushRacingDeletes: a flush running while images are deleted
// never brings one back, whichever lands first. Which interleaving a round
// gets is up to the scheduler (the image lock makes them all safe); under
// -race it also checks the flush's and the batches' shared state.
func TestAccessFlushRacingDeletes(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	repo := LocalKey("team/app")
	for i := range 50 {
		d := stDigest(i)
		stPutPulledImage(t, s, repo, d)
		done := make(chan error, 1)
		go func() { done <- s.FlushAccessTimes(ctx) }()
		stDeleteImage(t, s, repo, d)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := s.imageRecord(repo, d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: the deleted image's record after a racing flush: %v; want ErrNotFound", i, err)
		}
	}
}

// TestAccessFlushSkipsDeletedBlobs: a blob's access taken by a flush
// before the blob is deleted and written after is not written: the
// deleted blob gets no access record back. A blob still stored gets its.
func TestAccessFlushSkipsDeletedBlobs(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	at := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return at }
	var digests []string
	for i := range 2 {
		data := stBytes(1000, uint64(i+1))
		d := stSHA256(data)
		w, err := stWriteBlob(t, s, d, int64(len(data)), data, len(data))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Touch(ctx, d); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	gone, kept := digests[0], digests[1]
	todo := s.access.take() // a flush has taken both accesses …
	if err := s.DeleteBlob(ctx, gone, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.writeAccess(todo); err != nil { // … and writes them now
		t.Fatal(err)
	}
	if _, err := s.get(accessKey(gone)); !errors.Is(err, ErrNotFound) {
		t.Errorf("access record of the deleted blob: %v; want none", err)
	}
	if v, err := s.get(accessKey(kept)); err != nil || !getTime(v).Equal(at) {
		t.Errorf("access record of the stored blob: %v; want %s", err, at)
	}
}
