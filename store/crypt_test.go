package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ecOpen opens a store in dir with encryption of everything under key.
func ecOpen(t testing.TB, dir string, key []byte) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{Encryption: &Encryption{Key: key, KeyFile: "k1", All: true}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ecCommit commits data as a cached blob (encrypted under scope all).
func ecCommit(t testing.TB, s *Store, data []byte) string {
	t.Helper()
	d := stSHA256(data)
	w, err := s.NewBlobWriter(context.Background(), d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// ecRead reads a blob's plaintext from off, n bytes (-1: to the end).
func ecRead(s *Store, d string, size, off, n int64) ([]byte, error) {
	rc, err := (&BlobFile{Store: s, Digest: d, Len: size}).Open(context.Background(), off)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if n < 0 {
		return io.ReadAll(rc)
	}
	return io.ReadAll(io.LimitReader(rc, n))
}

func TestEncryptedFileHoldsNoPlaintext(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	data := stBytes(3*chunkSize+100, 1)
	d := ecCommit(t, s, data)
	raw, err := os.ReadFile(stBlobPath(s, d))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stBlobPath(s, d), ".enc") || int64(len(raw)) != sealedLen(int64(len(data))) {
		t.Fatalf("file %s is %d bytes, want an encrypted file of %d", stBlobPath(s, d), len(raw), sealedLen(int64(len(data))))
	}
	for off := 0; off+16 <= len(data); off += 997 {
		if bytes.Contains(raw, data[off:off+16]) {
			t.Fatalf("the blob file holds plaintext bytes %d..%d", off, off+16)
		}
	}
	if got, err := ecRead(s, d, int64(len(data)), 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// TestEncryptedRanges reads every edge of the chunk layout.
func TestEncryptedRanges(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 3*chunkSize + 7} {
		data := stBytes(size, uint64(size))
		d := ecCommit(t, s, data)
		type rg struct{ off, n int }
		cases := []rg{{0, -1}, {0, size}}
		for _, off := range []int{1, chunkSize - 1, chunkSize, chunkSize + 1, 2*chunkSize - 1, 2 * chunkSize, size - 1} {
			if off < 0 || off >= size {
				continue
			}
			for _, n := range []int{1, 2, chunkSize, chunkSize + 2, size - off} {
				if n > 0 && off+n <= size {
					cases = append(cases, rg{off, n})
				}
			}
			cases = append(cases, rg{off, -1})
		}
		for _, c := range cases {
			want := data[c.off:]
			if c.n >= 0 {
				want = data[c.off : c.off+c.n]
			}
			got, err := ecRead(s, d, int64(size), int64(c.off), int64(c.n))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("size %d, range %d+%d: %d bytes, %v; want %d", size, c.off, c.n, len(got), err, len(want))
			}
		}
	}
}

// ecDamage opens a committed encrypted blob's file and lets f change it.
func ecDamage(t *testing.T, s *Store, d string, f func(raw []byte) []byte) {
	t.Helper()
	p := stBlobPath(s, d)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(raw), 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedDamageDetected: a flipped byte, chunks swapped or a file
// cut short is never served: the read fails, the blob leaves the index (a
// cached route refills it) and its file moves to quarantine/.
func TestEncryptedDamageDetected(t *testing.T) {
	size := 3*chunkSize + 10
	first := headerSize + sealedChunk // chunk 1 starts here
	tests := []struct {
		name string
		f    func([]byte) []byte
		// served is how many leading bytes may come out before the error.
		served int
	}{
		{"header byte", func(b []byte) []byte { b[20] ^= 1; return b }, 0},
		{"chunk 0 byte", func(b []byte) []byte { b[headerSize+5] ^= 1; return b }, 0},
		{"chunk 1 byte", func(b []byte) []byte { b[first+100] ^= 0x80; return b }, chunkSize},
		{"chunk 1 tag", func(b []byte) []byte { b[first+sealedChunk-1] ^= 1; return b }, chunkSize},
		{"chunks 1 and 2 swapped", func(b []byte) []byte {
			c1 := bytes.Clone(b[first : first+sealedChunk])
			copy(b[first:], b[first+sealedChunk:first+2*sealedChunk])
			copy(b[first+sealedChunk:], c1)
			return b
		}, chunkSize},
		{"final chunk cut", func(b []byte) []byte { return b[:len(b)-tagSize-10] }, 3 * chunkSize},
		{"cut at a chunk boundary", func(b []byte) []byte { return b[:headerSize+3*sealedChunk] }, 3 * chunkSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ecOpen(t, t.TempDir(), testKey)
			data := stBytes(size, 7)
			d := ecCommit(t, s, data)
			ecDamage(t, s, d, tt.f)
			got, err := ecRead(s, d, int64(size), 0, -1)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read = %d bytes, %v; want ErrCorrupt", len(got), err)
			}
			if len(got) > tt.served || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("served %d bytes before the error (at most %d, all good)", len(got), tt.served)
			}
			if _, err := s.StatBlob(context.Background(), d); !errors.Is(err, ErrNotFound) {
				t.Errorf("StatBlob after the damage = %v, want ErrNotFound (so a cached route refills)", err)
			}
			if q := stFiles(t, filepath.Join(s.Dir(), "quarantine")); len(q) != 1 {
				t.Errorf("quarantine holds %q", q)
			}
			// A new fill of the digest serves again.
			ecCommit(t, s, data)
			if got, err := ecRead(s, d, int64(size), 0, -1); err != nil || !bytes.Equal(got, data) {
				t.Errorf("after a refill: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestEncryptedDigestChecked: a whole read checks the digest before the
// last chunk is handed out (chunks that authenticate but hold other bytes
// would need the data key; a record naming the wrong digest is one way).
func TestEncryptedDigestChecked(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	data := stBytes(chunkSize+5, 3)
	other := ecMisindex(t, s, ecCommit(t, s, data))
	got, err := ecRead(s, other, int64(len(data)), 0, -1)
	if !errors.Is(err, ErrCorrupt) || len(got) > chunkSize {
		t.Fatalf("read = %d bytes, %v; want ErrCorrupt before the last chunk", len(got), err)
	}
}

// ecMisindex indexes blob d's file under another digest too, its data key
// wrapped for it, and returns that digest: chunks that authenticate but
// hold other bytes (forging those would need the data key).
func ecMisindex(t *testing.T, s *Store, d string) string {
	t.Helper()
	other := stSHA256([]byte("other"))
	rec, err := s.getBlobRecord(d)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := s.dataKey(d, rec.keys)
	if err != nil {
		t.Fatal(err)
	}
	rec.keys.wrapped = s.enc.current().wrap(dk, rec.keys.ad(other))
	if err := s.db.Set(blobKey(other), rec.encode(), nil); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(s.encPath(other)), 0o750)
	if err := os.Link(s.encPath(d), s.encPath(other)); err != nil {
		t.Fatal(err)
	}
	return other
}

func TestEncryptedFollow(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	data := stBytes(2*chunkSize+300, 5)
	ecFollow(t, s, data, 7000, func(written int) []int {
		return []int{0, written / 2, max(0, written-chunkSize-3), written - 1}
	})
}

// ecFollow writes data through an encrypted blob writer in pieces of
// piece bytes and, after each, reads the follower back at every offset
// offs gives, checking the bytes. It returns the writer and the follower,
// both open (the test's cleanup aborts and closes them), for the caller
// to go on with.
func ecFollow(t *testing.T, s *Store, data []byte, piece int, offs func(written int) []int) (*BlobWriter, ReaderAtCloser) {
	t.Helper()
	w, err := s.NewBlobWriter(context.Background(), stSHA256(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Abort)
	r, err := w.Follow()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for written := 0; written < len(data); {
		k := min(piece, len(data)-written)
		if _, err := w.Write(data[written : written+k]); err != nil {
			t.Fatal(err)
		}
		written += k
		for _, off := range offs(written) {
			buf := make([]byte, written-off)
			if n, err := r.ReadAt(buf, int64(off)); n != len(buf) || !bytes.Equal(buf, data[off:written]) {
				t.Fatalf("written %d: ReadAt(%d) = %d, %v", written, off, n, err)
			}
		}
	}
	return w, r
}

func TestEncryptedWrongKeyRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), dir, Options{Encryption: &Encryption{Key: testKey, KeyFile: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	ecCommit(t, s, []byte("x"))
	s.Close()
	other := bytes.Repeat([]byte{7}, KeySize)
	_, err = Open(context.Background(), dir, Options{Encryption: &Encryption{Key: other, KeyFile: "/etc/berth/other.key"}})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "/etc/berth/other.key") ||
		!strings.Contains(err.Error(), Fingerprint(testKey)) || !strings.Contains(err.Error(), Fingerprint(other)) {
		t.Errorf("Open with another key = %v; want ErrWrongKey naming the file and both keys", err)
	}
	_, err = Open(context.Background(), dir, Options{})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "encryption.keyFile") {
		t.Errorf("Open without a key = %v; want ErrWrongKey saying to set encryption.keyFile", err)
	}
}

// TestEncryptionMixedStore: blobs stored before encryption was turned on
// keep serving; a push of one to a local repository encrypts it; a
// plaintext fill never replaces an encrypted copy.
func TestEncryptionMixedStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := stBytes(chunkSize+9, 11)
	var d string
	stOpenClose(t, dir, func(s *Store) {
		if s.enc != nil {
			t.Fatal("this test opens plaintext and encrypted stores of its own: run it without -encrypt (make test leaves it out of the encrypted run)")
		}
		d = ecCommit(t, s, data)
	})
	s, err := Open(ctx, dir, Options{Encryption: &Encryption{Key: testKey, KeyFile: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := ecRead(s, d, int64(len(data)), 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("plaintext blob after turning encryption on: %d bytes, %v", len(got), err)
	}
	u, err := s.CreateUpload(ctx, "private/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendUpload(ctx, u.ID, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitUpload(ctx, u.ID, d); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stBlobPath(s, d), ".enc") || stFiles(t, filepath.Join(dir, "blobs"))[0] != strings.TrimPrefix(filepath.ToSlash(stBlobPath(s, d)), filepath.ToSlash(dir)+"/blobs/") {
		t.Fatalf("a push did not replace the plaintext copy: %q", stFiles(t, filepath.Join(dir, "blobs")))
	}
	// A cached fill (plaintext under scope local) keeps the encrypted copy.
	ecCommit(t, s, data)
	if !strings.HasSuffix(stBlobPath(s, d), ".enc") || len(stFiles(t, filepath.Join(dir, "blobs"))) != 1 {
		t.Fatalf("a plaintext fill replaced the encrypted copy: %q", stFiles(t, filepath.Join(dir, "blobs")))
	}
	if got, err := ecRead(s, d, int64(len(data)), 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
}

func TestEncryptedManifests(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{Encryption: &Encryption{Key: testKey, KeyFile: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(repo RepoKey, body string) string {
		d := stSHA256([]byte(body))
		b := s.NewBatch()
		defer b.Close()
		if err := b.PutManifest(d, &Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		if err := b.PutImage(repo, d, Image{}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	local := put(LocalKey("private/app"), `{"secret":"local layer list"}`)
	cached := put(CachedKey("hub", "library/alpine"), `{"public":"cached"}`)
	for _, c := range []struct {
		d, body string
		sealed  bool
	}{{local, `{"secret":"local layer list"}`, true}, {cached, `{"public":"cached"}`, false}} {
		raw, err := s.get(manifestKey(c.d))
		if err != nil {
			t.Fatal(err)
		}
		if sealedManifest(raw) != c.sealed || c.sealed && bytes.Contains(raw, []byte("secret")) {
			t.Errorf("manifest %s: sealed %v, want %v", c.d, sealedManifest(raw), c.sealed)
		}
		s.hot.Clear()
		m, err := s.GetManifest(ctx, c.d)
		if err != nil || string(m.Body) != c.body {
			t.Errorf("GetManifest = %v, %v", m, err)
		}
	}
	// A cached write of the local manifest keeps it encrypted.
	put(CachedKey("hub", "x"), `{"secret":"local layer list"}`)
	if raw, _ := s.get(manifestKey(local)); !sealedManifest(raw) {
		t.Error("a cached write of an encrypted manifest stored it in the clear")
	}
}
