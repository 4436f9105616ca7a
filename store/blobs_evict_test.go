package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
)

// stCommitBlob commits data as a blob.
func stCommitBlob(t *testing.T, s *Store, data []byte) string {
	t.Helper()
	d := stSHA256(data)
	w, err := stWriteBlob(t, s, d, int64(len(data)), data, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBlobReadWhileEvictedAndFilledAgain: a reader of a blob that is
// deleted (evicted) and then committed again by a new fill reads the
// bytes it opened to the end: the file is unlinked and replaced by a
// rename, never truncated or rewritten in place.
func TestBlobReadWhileEvictedAndFilledAgain(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	data := stBytes(200_000, 11)
	d := stCommitBlob(t, s, data)
	rc, err := (&BlobFile{Store: s, Digest: d, Len: int64(len(data))}).Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlob(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	stCommitBlob(t, s, data)
	rest, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("the reader got %d bytes (%v), want the %d it opened", len(head)+len(rest), err, len(data))
	}
	if st := s.Stats(); st.Blobs != 1 || st.BlobBytes != int64(len(data)) {
		t.Fatalf("totals %+v, want one blob of %d bytes", st, len(data))
	}
}

// TestBlobDeleteCommitOpenRace: deletes, new commits and opens of one
// digest at once never leave an index entry without its file, and the
// totals stay the store's.
func TestBlobDeleteCommitOpenRace(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	data := stBytes(50_000, 12)
	d := stCommitBlob(t, s, data)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for range 30 {
				switch i % 3 {
				case 0:
					if err := s.DeleteBlob(ctx, d, nil); err != nil {
						t.Error(err)
					}
				case 1:
					w, err := s.NewBlobWriter(ctx, d, int64(len(data)))
					if err == nil {
						_, err = w.Write(data)
					}
					if err == nil {
						err = w.Commit(ctx)
					}
					if err != nil {
						t.Error(err)
					}
				default:
					f, _, err := s.OpenBlob(ctx, d)
					if err == nil {
						f.Close()
					} else if !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	_, statErr := s.StatBlob(ctx, d)
	_, fileErr := os.Stat(stBlobPath(s, d))
	if statErr == nil && fileErr != nil {
		t.Fatalf("the index holds %s but its file is gone: %v", d, fileErr)
	}
	want := Stats{}
	if statErr == nil {
		want.Blobs, want.BlobBytes = 1, int64(len(data))
	}
	if st := s.Stats(); st.Blobs != want.Blobs || st.BlobBytes != want.BlobBytes {
		t.Fatalf("totals %+v, want %+v", st, want)
	}
}
