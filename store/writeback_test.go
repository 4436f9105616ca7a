package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
)

// A blob written across several writeback steps commits whole and reads
// back byte for byte; one aborted after some steps leaves no file, in tmp/
// or in blobs/.
func TestBlobWriterAcrossWritebackSteps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := stOpen(t, dir)
	data := stBytes(3*writebackStep+12345, 9)
	d := stSHA256(data)
	w, err := s.NewBlobWriter(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 1<<20+7) // not a multiple of a page
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f, _, err := s.OpenBlob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; want the %d written", len(got), err, len(data))
	}

	other := stBytes(2*writebackStep+1, 10)
	w, err = s.NewBlobWriter(ctx, stSHA256(other), int64(len(other)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(other[:2*writebackStep]); err != nil {
		t.Fatal(err)
	}
	if err := w.Verify(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify of a short blob = %v, want a mismatch", err)
	}
	w.Abort()
	if left := stFiles(t, filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("an aborted blob left %v in tmp/", left)
	}
	if _, err := s.StatBlob(ctx, stSHA256(other)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an aborted blob is indexed: %v", err)
	}
}
