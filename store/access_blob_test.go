package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

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
