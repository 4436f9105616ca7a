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

	"github.com/cockroachdb/pebble/v2"
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

// OpenBlob opens a committed blob for reading. An index entry whose file is
// gone (removed by hand) is dropped and reported as ErrNotFound.
func (s *Store) OpenBlob(ctx context.Context, digest string) (*os.File, BlobInfo, error) {
	info, err := s.StatBlob(ctx, digest)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	f, err := os.Open(s.blobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return s.missingFile(ctx, digest)
	}
	if err != nil {
		return nil, BlobInfo{}, err
	}
	return f, info, nil
}

// missingFile handles a blob whose file was not there when opened. Under
// the digest's blobMu (which deletes and commits take), it tells an
// eviction or delete that raced the open (the index entry is gone too: not
// found) and a fill that committed the blob again meanwhile (the file is
// back: it is opened) from a file really lost, whose index entry is
// dropped.
func (s *Store) missingFile(ctx context.Context, digest string) (*os.File, BlobInfo, error) {
	defer s.lockBlob(digest)()
	info, err := s.StatBlob(ctx, digest)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	if f, err := os.Open(s.blobPath(digest)); !errors.Is(err, fs.ErrNotExist) {
		return f, info, err
	}
	s.log.Warn("blob indexed but its file is missing; dropping the index entry", zap.String("digest", digest))
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(blobKey(digest), nil)
	_ = b.DeleteRange(originPrefix(digest), upperBound(originPrefix(digest)), nil)
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if b.Commit(pebble.Sync) == nil {
		s.blobBytes.Add(-info.Size)
		s.blobCount.Add(-1)
	}
	return nil, BlobInfo{}, ErrNotFound
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
}

// NewBlobWriter starts writing the blob digest. size is the expected length
// or -1 when unknown.
func (s *Store) NewBlobWriter(ctx context.Context, digest string, size int64) (*BlobWriter, error) {
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
	return &BlobWriter{s: s, digest: digest, size: size, f: f, h: h, hex: hx, wb: startWriteback(f)}, nil
}

// Path is the temporary file; readers may open it to follow the write.
func (w *BlobWriter) Path() string { return w.f.Name() }

// Written is how many bytes were written so far.
func (w *BlobWriter) Written() int64 { return w.n }

// Write appends p, hashing as it goes.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.size >= 0 && w.n+int64(len(p)) > w.size {
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes", w.digest, w.size)
	}
	// Hash and write at once: on a fill they are the two costs per byte.
	done := make(chan struct{})
	go func() { w.h.Write(p); close(done) }()
	n, err := w.f.Write(p)
	<-done
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
	w.wb.stop()
	if err := w.f.Close(); err != nil {
		return err
	}
	return w.s.moveIntoPlace(w.f.Name(), w.digest, w.n, o) // fsyncs before the rename
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
		rel, _ := filepath.Rel(filepath.Join(s.dir, "blobs"), path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			return nil
		}
		digest := parts[0] + ":" + parts[2]
		v, err := s.get(blobKey(digest))
		if errors.Is(err, ErrNotFound) {
			orphans++
			return os.Remove(path)
		} else if err != nil {
			return err
		}
		if len(v) >= 8 {
			s.blobBytes.Add(int64(binary.BigEndian.Uint64(v)))
			s.blobCount.Add(1)
		}
		return nil
	})
	if orphans > 0 {
		s.log.Info("removed blob files that were never indexed", zap.Int("count", orphans))
	}
	return err
}
