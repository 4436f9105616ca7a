package store

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// splitDigest checks a digest's form and returns its hash and hex part.
func splitDigest(digest string) (hash.Hash, string, error) {
	alg, hx, ok := strings.Cut(digest, ":")
	if !ok {
		return nil, "", fmt.Errorf("digest %q: no algorithm", digest)
	}
	var h hash.Hash
	switch alg {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil, "", fmt.Errorf("digest %q: unsupported algorithm", digest)
	}
	if len(hx) != h.Size()*2 {
		return nil, "", fmt.Errorf("digest %q: wrong length", digest)
	}
	if _, err := hex.DecodeString(hx); err != nil || strings.ToLower(hx) != hx {
		return nil, "", fmt.Errorf("digest %q: not lower-case hex", digest)
	}
	return h, hx, nil
}

func verifyBytes(digest string, b []byte) error {
	h, hx, err := splitDigest(digest)
	if err != nil {
		return err
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != hx {
		return fmt.Errorf("%w: content hashes to %s, not %s", ErrDigestMismatch, got, digest)
	}
	return nil
}

// blobPath is where a committed blob's bytes live.
func (s *Store) blobPath(digest string) string {
	alg, hx, _ := strings.Cut(digest, ":")
	return filepath.Join(s.dir, "blobs", alg, hx[:2], hx)
}

// BlobInfo describes a committed blob.
type BlobInfo struct {
	Size int64
}

// decodeBlob reads a blob record: size (8) | createdAt (8) | flags (1). The
// flags of older versions (a "public" bit) are ignored: who sees a blob is
// Visible's to say.
func decodeBlob(v []byte) (BlobInfo, time.Time, bool) {
	if len(v) < 16 {
		return BlobInfo{}, time.Time{}, false
	}
	return BlobInfo{Size: int64(binary.BigEndian.Uint64(v))}, getTime(v[8:]), true
}

func encodeBlob(info BlobInfo, created time.Time) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 17), uint64(info.Size))
	v = putTime(v, created)
	return append(v, 0)
}

// StatBlob returns the size of a committed blob, or ErrNotFound.
func (s *Store) StatBlob(ctx context.Context, digest string) (BlobInfo, error) {
	if _, _, err := splitDigest(digest); err != nil {
		return BlobInfo{}, err
	}
	v, err := s.get(blobKey(digest))
	if err != nil {
		return BlobInfo{}, err
	}
	info, _, ok := decodeBlob(v)
	if !ok {
		return BlobInfo{}, fmt.Errorf("blob %s: corrupt record", digest)
	}
	return info, nil
}

// BlobWriter writes one blob to a temporary file while hashing it. Nothing
// is visible until Commit has verified digest and size.
type BlobWriter struct {
	s      *Store
	digest string
	size   int64 // expected size, -1 if unknown
	f      *os.File
	h      hash.Hash
	hex    string
	n      int64
	done   bool
	broken bool // a write failed part way; hash and file differ
	// verified: Verify found the digest and size right.
	verified bool
	wb       *writeback // makes the file durable in steps as it grows

	// seal encrypts the blob as it is written, under dk (keys: its
	// wrapped form for the index); nil for a plaintext blob.
	seal *sealer
	dk   []byte
	keys *blobKeys
}

// NewBlobWriter starts writing the blob digest of a cached repository (a
// fill, a peer's copy, a bundle's cached image): encrypted when encryption
// covers cached content. size is the expected length or -1 when unknown.
func (s *Store) NewBlobWriter(ctx context.Context, digest string, size int64) (*BlobWriter, error) {
	return s.newBlobWriter(ctx, digest, size, s.encryptCached())
}

// NewLocalBlobWriter starts writing a blob a local repository holds that
// comes whole rather than through an upload session (the SBOM Berth makes
// of a pushed image): encrypted whenever encryption is on, as a push is.
func (s *Store) NewLocalBlobWriter(ctx context.Context, digest string, size int64) (*BlobWriter, error) {
	return s.newBlobWriter(ctx, digest, size, s.encryptLocal())
}

func (s *Store) newBlobWriter(ctx context.Context, digest string, size int64, encrypt bool) (*BlobWriter, error) {
	h, hx, err := splitDigest(digest)
	if err != nil {
		return nil, err
	}
	n := atomic.AddUint64(&s.tmpN, 1)
	name := filepath.Join(s.dir, "tmp", hx[:16]+"-"+strconv.FormatInt(int64(os.Getpid()), 10)+"-"+strconv.FormatUint(n, 10))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create temp blob: %w", err)
	}
	w := &BlobWriter{s: s, digest: digest, size: size, f: f, h: h, hex: hx, wb: startWriteback(f)}
	if encrypt {
		w.dk, w.keys = s.newBlobKeys(digest)
		if w.seal, err = newSealer(f, w.dk, w.keys.fileID); err != nil {
			w.wb.stop()
			f.Close()
			os.Remove(name)
			return nil, err
		}
	}
	return w, nil
}

// ReaderAtCloser reads a blob being written (see BlobWriter.Follow).
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
}

// Follow opens the blob being written for reading its plaintext, below
// Written: the temporary file, or for an encrypted blob its sealed chunks
// and the chunk still in memory.
func (w *BlobWriter) Follow() (ReaderAtCloser, error) {
	f, err := os.Open(w.f.Name())
	if err != nil || w.seal == nil {
		return f, err
	}
	c, err := newSealedFile(f, w.dk, w.keys.fileID, -1)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &follower{s: w.seal, c: c}, nil
}

// Expect sets the blob's expected length, for a writer opened before it
// was known (-1): a fill opens its file while the upstream's headers are on
// their way.
func (w *BlobWriter) Expect(size int64) error {
	if w.size >= 0 && size != w.size || size >= 0 && w.n > size {
		return fmt.Errorf("blob %s: %d bytes expected after %d (%d written)", w.digest, size, w.size, w.n)
	}
	w.size = size
	return nil
}

// Path is the temporary file. It holds ciphertext when the blob is
// encrypted: readers follow the write with Follow.
func (w *BlobWriter) Path() string { return w.f.Name() }

// Written is how many bytes were written so far.
func (w *BlobWriter) Written() int64 { return w.n }

// parallelHashMin is the smallest write hashed on a goroutine of its own
// while the file is written (see Write).
const parallelHashMin = 64 << 10

// Write appends p, hashing as it goes.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.size >= 0 && w.n+int64(len(p)) > w.size {
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes", w.digest, w.size)
	}
	// Hash and write at once: on a fill they are the two costs per byte.
	// A small piece (the first of a fill, which the client waits for, is
	// one) is hashed inline: handing it to another goroutine costs more than
	// hashing it, and a busy machine may not run that goroutine at once.
	var done chan struct{}
	if len(p) >= parallelHashMin {
		done = make(chan struct{})
		go func() { w.h.Write(p); close(done) }()
	} else {
		w.h.Write(p)
	}
	var n int
	var err error
	if w.seal != nil {
		if err = w.seal.write(p); err == nil {
			n = len(p)
		}
	} else {
		n, err = w.f.Write(p)
	}
	if done != nil {
		<-done
	}
	if n < len(p) && err == nil {
		err = io.ErrShortWrite
	}
	if err != nil {
		// The hash saw bytes the file did not take: the blob cannot commit.
		w.broken = true
	}
	w.n += int64(n)
	w.wb.grew(w.n)
	return n, err
}

// Verify checks the bytes written so far against the digest and the
// expected size, without committing: a fill gives its readers the last
// byte once its bytes verified, and commits (fsync, rename, index) after.
// Commit verifies when Verify was not called.
func (w *BlobWriter) Verify() error {
	if w.broken {
		return fmt.Errorf("blob %s: a write failed; not committing", w.digest)
	}
	if w.size >= 0 && w.n != w.size {
		return fmt.Errorf("%w: blob %s is %d bytes, expected %d", ErrDigestMismatch, w.digest, w.n, w.size)
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.hex {
		return fmt.Errorf("%w: content hashes to %s:%s, not %s", ErrDigestMismatch, w.digest[:strings.IndexByte(w.digest, ':')], got, w.digest)
	}
	w.verified = true
	return nil
}

// Commit verifies the digest and size, makes the file durable, moves it into
// place and indexes it. On any error the blob is discarded. The blob is
// linked nowhere, so no repository sees it until one links it (see
// CommitFor).
func (w *BlobWriter) Commit(ctx context.Context) error {
	return w.finish(nil)
}

// CommitFor commits like Commit and, in the same write as the index entry,
// records the blob's origin (see Batch.LinkOrigin): fetched content is
// visible only where it came from.
func (w *BlobWriter) CommitFor(ctx context.Context, o Origin) error {
	if err := o.check(); err != nil {
		w.Abort()
		return err
	}
	return w.finish(&o)
}

func (w *BlobWriter) finish(o *Origin) error {
	if w.done {
		return errors.New("blob writer already finished")
	}
	w.done = true
	err := w.commit(o)
	if err != nil {
		w.wb.stop()
		w.f.Close()
		os.Remove(w.f.Name())
	}
	return err
}

func (w *BlobWriter) commit(o *Origin) error {
	if !w.verified {
		if err := w.Verify(); err != nil {
			return err
		}
	}
	if w.seal != nil {
		if err := w.seal.finish(); err != nil {
			return err
		}
	}
	w.wb.stop()
	if err := w.f.Close(); err != nil {
		return err
	}
	return w.s.moveIntoPlace(w.f.Name(), w.digest, w.n, o, w.keys) // fsyncs before the rename
}

// Abort discards the blob.
func (w *BlobWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.wb.stop()
	w.f.Close()
	os.Remove(w.f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// recover removes what a crash can leave behind: temporary files of fills
// that never committed, and blob files renamed into place whose index entry
// was never written.
func (s *Store) recover(ctx context.Context) error {
	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("remove partial fill: %w", err)
		}
	}
	if len(entries) > 0 {
		s.log.Info("removed partial fills left by an earlier run", zap.Int("count", len(entries)))
	}
	orphans := 0
	err = filepath.WalkDir(filepath.Join(s.dir, "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		keep, err := s.indexedFile(path)
		if err != nil || keep {
			return err
		}
		orphans++
		return os.Remove(path)
	})
	if orphans > 0 {
		s.log.Info("removed blob files that were never indexed", zap.Int("count", orphans))
	}
	return err
}

// indexedFile reports whether a file under blobs/ is the one a blob's
// index record names (a plaintext blob's <hex>, an encrypted one's
// <hex>.enc), and counts it in the totals. Any other is an orphan: never
// indexed, or the other form of a blob a crash left behind.
func (s *Store) indexedFile(path string) (bool, error) {
	rel, _ := filepath.Rel(filepath.Join(s.dir, "blobs"), path)
	parts := strings.Split(rel, string(filepath.Separator))
	if len(parts) != 3 {
		return true, nil
	}
	name, enc := strings.CutSuffix(parts[2], ".enc")
	digest := parts[0] + ":" + name
	v, err := s.get(blobKey(digest))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	rec, err := decodeBlobRecord(digest, v)
	if err != nil {
		return true, nil // kept for the operator; reads report the record
	}
	if (rec.keys != nil) != enc {
		return false, nil
	}
	s.blobBytes.Add(rec.info.Size)
	s.blobCount.Add(1)
	return true, nil
}
