package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// stBytes returns n deterministic pseudo-random bytes.
func stBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// stFiles lists the regular files under dir, relative to it.
func stFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stWriteBlob writes data in pieces of chunk bytes and returns the writer
// and the first write error.
func stWriteBlob(t *testing.T, s *Store, digest string, size int64, data []byte, chunk int) (*BlobWriter, error) {
	t.Helper()
	w, err := s.NewBlobWriter(context.Background(), digest, size)
	if err != nil {
		t.Fatalf("NewBlobWriter: %v", err)
	}
	for len(data) > 0 {
		k := min(chunk, len(data))
		n, err := w.Write(data[:k])
		if err != nil {
			return w, err
		}
		if n != k {
			t.Fatalf("Write wrote %d of %d bytes", n, k)
		}
		data = data[k:]
	}
	return w, nil
}

// stBlobPath is the file a blob's index record names (a plaintext or an
// encrypted file, see -encrypt).
func stBlobPath(s *Store, digest string) string {
	if rec, err := s.getBlobRecord(digest); err == nil {
		return s.fileOf(digest, rec)
	}
	return s.blobPath(digest)
}

// stSuffix is the suffix of the file of a blob a BlobWriter wrote: ".enc"
// when the tests run with -encrypt=all.
func stSuffix() string {
	if *encryptFlag == "all" {
		return ".enc"
	}
	return ""
}

func TestBlobCommit(t *testing.T) {
	ctx := context.Background()
	data := stBytes(1<<20+17, 1)
	tests := []struct {
		name   string
		data   []byte
		digest string
		size   int64
		chunk  int
	}{
		{name: "sha256, size known", data: data, digest: stSHA256(data), size: int64(len(data)), chunk: 64 << 10},
		{name: "sha256, size unknown", data: data, digest: stSHA256(data), size: -1, chunk: 1000},
		{name: "sha512", data: data, digest: stSHA512(data), size: int64(len(data)), chunk: 1 << 20},
		{name: "one write", data: data, digest: stSHA256(data), size: int64(len(data)), chunk: len(data)},
		{name: "empty", data: nil, digest: stSHA256(nil), size: 0, chunk: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stOpen(t, t.TempDir())
			w, err := stWriteBlob(t, s, tt.digest, tt.size, tt.data, tt.chunk)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if w.Written() != int64(len(tt.data)) {
				t.Errorf("Written = %d, want %d", w.Written(), len(tt.data))
			}
			if !strings.HasPrefix(w.Path(), filepath.Join(s.Dir(), "tmp")+string(filepath.Separator)) {
				t.Errorf("temp file %s is not under tmp/", w.Path())
			}
			if _, err := s.StatBlob(ctx, tt.digest); !errors.Is(err, ErrNotFound) {
				t.Errorf("blob visible before Commit: %v", err)
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			info, err := s.StatBlob(ctx, tt.digest)
			if err != nil || info.Size != int64(len(tt.data)) {
				t.Errorf("StatBlob = %+v, %v; want size %d", info, err, len(tt.data))
			}
			f, info, err := s.OpenBlob(ctx, tt.digest)
			if err != nil {
				t.Fatalf("OpenBlob: %v", err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || !bytes.Equal(got, tt.data) || info.Size != int64(len(tt.data)) {
				t.Errorf("OpenBlob read %d bytes (size %d), %v; want %d", len(got), info.Size, err, len(tt.data))
			}
			alg, hx, _ := strings.Cut(tt.digest, ":")
			if files := stFiles(t, filepath.Join(s.Dir(), "blobs")); len(files) != 1 || files[0] != alg+"/"+hx[:2]+"/"+hx+stSuffix() {
				t.Errorf("files under blobs/: %q", files)
			}
			if files := stFiles(t, filepath.Join(s.Dir(), "tmp")); len(files) != 0 {
				t.Errorf("left in tmp/: %q", files)
			}
			if err := w.Commit(ctx); err == nil {
				t.Error("a second Commit succeeded")
			}
			w.Abort() // after Commit: a no-op
			if _, err := s.StatBlob(ctx, tt.digest); err != nil {
				t.Errorf("blob gone after a second Commit and an Abort: %v", err)
			}
		})
	}
}

// A blob that fails verification leaves nothing behind.
func TestBlobRefused(t *testing.T) {
	ctx := context.Background()
	data := stBytes(300_000, 2)
	other := stBytes(300_000, 3)
	tests := []struct {
		name         string
		digest       string
		size         int64
		write        []byte
		wantWriteErr bool
		wantCommit   error // want Commit to fail with this; nil: any error
		abort        bool  // Abort instead of Commit
	}{
		{name: "wrong bytes, right size", digest: stSHA256(data), size: int64(len(data)), write: other, wantCommit: ErrDigestMismatch},
		{name: "wrong bytes, size unknown", digest: stSHA256(data), size: -1, write: other, wantCommit: ErrDigestMismatch},
		{name: "wrong bytes, sha512", digest: stSHA512(data), size: -1, write: other, wantCommit: ErrDigestMismatch},
		{name: "short", digest: stSHA256(data), size: int64(len(data)), write: data[:len(data)-1]},
		{name: "short, size unknown", digest: stSHA256(data), size: -1, write: data[:len(data)-1], wantCommit: ErrDigestMismatch},
		{name: "right bytes, size said bigger", digest: stSHA256(data), size: int64(len(data)) + 1, write: data},
		{name: "right bytes, size said smaller", digest: stSHA256(data), size: int64(len(data)) - 1, write: data, wantWriteErr: true},
		{name: "more than the size", digest: stSHA256(data), size: 10, write: data, wantWriteErr: true},
		{name: "aborted", digest: stSHA256(data), size: int64(len(data)), write: data[:1000], abort: true},
		{name: "aborted complete", digest: stSHA256(data), size: int64(len(data)), write: data, abort: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stOpen(t, t.TempDir())
			w, err := stWriteBlob(t, s, tt.digest, tt.size, tt.write, 64<<10)
			if tt.wantWriteErr {
				if err == nil {
					t.Fatal("writing past the expected size succeeded")
				}
				if w.Written() > tt.size {
					t.Errorf("Written = %d, past the expected %d", w.Written(), tt.size)
				}
			} else if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if tt.abort {
				w.Abort()
				w.Abort()
				if err := w.Commit(ctx); err == nil {
					t.Error("Commit after Abort succeeded")
				}
			} else {
				err := w.Commit(ctx)
				if err == nil {
					t.Fatal("Commit succeeded")
				}
				if tt.wantCommit != nil && !errors.Is(err, tt.wantCommit) {
					t.Errorf("Commit = %v, want %v", err, tt.wantCommit)
				}
				if err := w.Commit(ctx); err == nil {
					t.Error("a second Commit succeeded")
				}
				w.Abort()
			}
			if _, err := s.StatBlob(ctx, tt.digest); !errors.Is(err, ErrNotFound) {
				t.Errorf("StatBlob = %v, want ErrNotFound", err)
			}
			if _, _, err := s.OpenBlob(ctx, tt.digest); !errors.Is(err, ErrNotFound) {
				t.Errorf("OpenBlob = %v, want ErrNotFound", err)
			}
			if files := stFiles(t, filepath.Join(s.Dir(), "blobs")); len(files) != 0 {
				t.Errorf("files under blobs/: %q", files)
			}
			if files := stFiles(t, filepath.Join(s.Dir(), "tmp")); len(files) != 0 {
				t.Errorf("left in tmp/: %q", files)
			}
			// The digest can still be filled afterwards.
			w2, err := stWriteBlob(t, s, stSHA256(data), int64(len(data)), data, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if err := w2.Commit(ctx); err != nil {
				t.Fatalf("Commit of the right bytes afterwards: %v", err)
			}
		})
	}
}

func TestBlobBadDigest(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	good := stSHA256([]byte("x"))
	for _, d := range []string{"", "sha256", strings.TrimPrefix(good, "sha256:"), "md5:" + strings.Repeat("0", 32),
		strings.ToUpper(good), good[:20], "sha256:" + strings.Repeat("z", 64), "sha256:../../../../etc/passwd"} {
		t.Run(d, func(t *testing.T) {
			if w, err := s.NewBlobWriter(ctx, d, -1); err == nil {
				w.Abort()
				t.Errorf("NewBlobWriter(%q) succeeded", d)
			}
			if _, err := s.StatBlob(ctx, d); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("StatBlob(%q) = %v, want a malformed-digest error", d, err)
			}
			if _, _, err := s.OpenBlob(ctx, d); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("OpenBlob(%q) = %v, want a malformed-digest error", d, err)
			}
		})
	}
	if files := stFiles(t, filepath.Join(s.Dir(), "tmp")); len(files) != 0 {
		t.Errorf("left in tmp/: %q", files)
	}
}

// Two fills of the same blob racing each other both succeed, and the blob
// is whole afterwards.
func TestBlobConcurrentFills(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	data := stBytes(2<<20, 4)
	d := stSHA256(data)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.NewBlobWriter(ctx, d, int64(len(data)))
			if err != nil {
				errs[i] = err
				return
			}
			for p := data; len(p) > 0; p = p[min(len(p), 100_000):] {
				if _, err := w.Write(p[:min(len(p), 100_000)]); err != nil {
					w.Abort()
					errs[i] = err
					return
				}
			}
			errs[i] = w.Commit(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("fill %d: %v", i, err)
		}
	}
	f, _, err := s.OpenBlob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, data) {
		t.Fatalf("blob has %d bytes after concurrent fills", len(got))
	}
	if files := stFiles(t, filepath.Join(s.Dir(), "tmp")); len(files) != 0 {
		t.Errorf("left in tmp/: %q", files)
	}
}

// Open removes what a crash leaves: partial fills in tmp/ and blob files
// renamed into place whose index entry was never written. Indexed blobs
// are kept.
func TestRecoverCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept := stBytes(5000, 5)
	keptDigest := stSHA256(kept)
	stOpenClose(t, dir, func(s *Store) {
		w, err := stWriteBlob(t, s, keptDigest, int64(len(kept)), kept, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})

	orphan := stBytes(4000, 6)
	orphan512 := stBytes(4000, 7)
	var leftovers []string
	for _, f := range []struct{ path, content string }{
		{filepath.Join("tmp", "0123456789abcdef-999-1"), "partial fill"},
		{filepath.Join("tmp", "stray-dir", "file"), "x"},
		{stRel(stSHA256(orphan)), string(orphan)},
		{stRel(stSHA512(orphan512)), string(orphan512)},
		{filepath.Join("blobs", "sha256", "ab", "ab"+strings.Repeat("0", 62)), "not indexed"},
	} {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.content), 0o640); err != nil {
			t.Fatal(err)
		}
		leftovers = append(leftovers, p)
	}

	s := stOpen(t, dir)
	for _, p := range leftovers {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	if files := stFiles(t, filepath.Join(dir, "tmp")); len(files) != 0 {
		t.Errorf("left in tmp/: %q", files)
	}
	if files, want := stFiles(t, filepath.Join(dir, "blobs")), strings.TrimPrefix(stRel(keptDigest), "blobs/")+stSuffix(); len(files) != 1 || files[0] != want {
		t.Errorf("files under blobs/: %q, want only %s", files, want)
	}
	f, info, err := s.OpenBlob(ctx, keptDigest)
	if err != nil {
		t.Fatalf("the indexed blob is gone: %v", err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, kept) || info.Size != int64(len(kept)) {
		t.Errorf("indexed blob: %d bytes, size %d", len(got), info.Size)
	}
	if _, err := s.StatBlob(ctx, stSHA256(orphan)); !errors.Is(err, ErrNotFound) {
		t.Errorf("StatBlob of an orphan = %v", err)
	}
}

// stRel is a blob's path relative to the store's directory.
func stRel(digest string) string {
	alg, hx, _ := strings.Cut(digest, ":")
	return filepath.ToSlash(filepath.Join("blobs", alg, hx[:2], hx))
}

// A blob file deleted by hand is noticed on open: the index entry goes and
// the blob can be filled again.
func TestBlobFileDeletedByHand(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	data := stBytes(10_000, 8)
	d := stSHA256(data)
	commit := func() {
		t.Helper()
		w, err := stWriteBlob(t, s, d, int64(len(data)), data, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	commit()
	if err := os.Remove(stBlobPath(s, d)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenBlob of a deleted file = %v, want ErrNotFound", err)
	}
	if _, err := s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("index entry kept after OpenBlob found the file gone: StatBlob = %v", err)
	}
	if _, err := s.get(blobKey(d)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("index entry still in pebble: %v", err)
	}
	commit()
	f, _, err := s.OpenBlob(ctx, d)
	if err != nil {
		t.Fatalf("OpenBlob after filling again: %v", err)
	}
	f.Close()
}

// An index entry whose file was deleted while the store was down is also
// dropped on first use after the restart.
func TestBlobFileDeletedWhileClosed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := stBytes(10_000, 9)
	d := stSHA256(data)
	stOpenClose(t, dir, func(s *Store) {
		w, err := stWriteBlob(t, s, d, int64(len(data)), data, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.Remove(filepath.Join(dir, stRel(d)+stSuffix())); err != nil {
		t.Fatal(err)
	}
	s := stOpen(t, dir)
	if _, _, err := s.OpenBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenBlob = %v, want ErrNotFound", err)
	}
	if _, err := s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatBlob = %v, want ErrNotFound", err)
	}
}

// A writer opened before its blob's length was known takes it later:
// more bytes than that are refused, and so is a second, different length.
func TestBlobWriterExpect(t *testing.T) {
	s := stOpen(t, t.TempDir())
	data := []byte("hello")
	d := stSHA256(data)
	w, err := s.NewBlobWriter(context.Background(), d, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Expect(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := w.Expect(int64(len(data)) + 1); err == nil {
		t.Error("a second, different length was taken")
	}
	if _, err := w.Write(append(data, '!')); err == nil {
		t.Error("more bytes than expected were taken")
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if info, err := s.StatBlob(context.Background(), d); err != nil || info.Size != int64(len(data)) {
		t.Errorf("StatBlob = %+v, %v; want %d bytes", info, err, len(data))
	}
}
