package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// OpenBlob opens a committed blob for reading its plaintext from the
// start: a plaintext blob's *os.File, or an encrypted blob's stream, which
// authenticates every chunk and checks the digest before its last bytes.
// An index entry whose file is gone (removed by hand) is dropped and
// reported as ErrNotFound.
func (s *Store) OpenBlob(ctx context.Context, digest string) (io.ReadCloser, BlobInfo, error) {
	return s.openBlobAt(ctx, digest, 0)
}

// openBlobAt opens a committed blob's plaintext at off.
func (s *Store) openBlobAt(ctx context.Context, digest string, off int64) (io.ReadCloser, BlobInfo, error) {
	if _, _, err := splitDigest(digest); err != nil {
		return nil, BlobInfo{}, err
	}
	rec, err := s.getBlobRecord(digest)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	rc, err := s.openRecord(digest, rec, off)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errStaleFile) {
		return s.reopen(ctx, digest, off)
	}
	if err != nil {
		return nil, BlobInfo{}, err
	}
	return rc, rec.info, nil
}

// encPath is where an encrypted blob's file lives; a plaintext one's is
// blobPath. The index record says which one a blob has.
func (s *Store) encPath(digest string) string { return s.blobPath(digest) + ".enc" }

func (s *Store) fileOf(digest string, rec blobRecord) string {
	if rec.keys != nil {
		return s.encPath(digest)
	}
	return s.blobPath(digest)
}

// openRecord opens the file rec describes at off. A plaintext blob is its
// *os.File, so a TCP response is sent with sendfile.
func (s *Store) openRecord(digest string, rec blobRecord, off int64) (io.ReadCloser, error) {
	f, err := os.Open(s.fileOf(digest, rec))
	if err != nil {
		return nil, err
	}
	if rec.keys == nil {
		if off > 0 {
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("seek blob: %w", err)
			}
		}
		return f, nil
	}
	rc, err := s.openSealed(f, digest, rec, off)
	if err != nil {
		f.Close()
	}
	return rc, err
}

// openSealed reads an encrypted blob file from off. It opens the first
// chunk at once, so a file that fails there is an error before any byte
// is sent.
func (s *Store) openSealed(f *os.File, digest string, rec blobRecord, off int64) (io.ReadCloser, error) {
	dk, err := s.dataKey(digest, rec.keys)
	if err != nil {
		return nil, err
	}
	c, err := newSealedFile(f, dk, rec.keys.fileID, rec.info.Size)
	if err != nil {
		return nil, err
	}
	if err := c.checkHeader(); err != nil {
		return nil, err
	}
	id := rec.keys.fileID
	c.corrupt = func(i int64) error {
		return s.quarantine(digest, id, fmt.Sprintf("chunk %d fails authentication", i))
	}
	st := &blobStream{c: c, off: off}
	if off == 0 {
		st.h, st.hex, _ = splitDigest(digest)
		st.bad = func() error { return s.quarantine(digest, id, "decrypts to bytes of another digest") }
	}
	if off < rec.info.Size {
		if _, err := c.chunk(off / chunkSize); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// reopen opens a blob whose file was not there, or not the indexed one,
// when opened. Under the digest's blobMu (which deletes and commits take),
// it tells an eviction or delete that raced the open (the index entry is
// gone too: not found) and a fill that committed the blob again meanwhile
// (the file is back: it is opened) from a file really lost, whose index
// entry is dropped.
func (s *Store) reopen(ctx context.Context, digest string, off int64) (io.ReadCloser, BlobInfo, error) {
	unlock := s.lockBlob(digest)
	rec, err := s.getBlobRecord(digest)
	if err != nil {
		unlock()
		return nil, BlobInfo{}, err
	}
	rc, err := s.openRecord(digest, rec, off)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("blob indexed but its file is missing; dropping the index entry", zap.String("digest", digest))
		s.dropIndexLocked(digest, rec.info)
		unlock()
		return nil, BlobInfo{}, ErrNotFound
	}
	unlock()
	if errors.Is(err, errStaleFile) {
		return nil, BlobInfo{}, s.quarantine(digest, rec.keys.fileID, "has a header that does not match its index record")
	}
	if err != nil {
		return nil, BlobInfo{}, err
	}
	return rc, rec.info, nil
}

// dropIndexLocked removes a blob's index entry and origin records (its
// file is gone). The caller holds the digest's blobMu.
func (s *Store) dropIndexLocked(digest string, info BlobInfo) {
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
}

// quarantine takes an encrypted blob that failed authentication or its
// digest out of service: its file moves to quarantine/ (for the operator
// to look at) and its index entry is dropped, so a cached repository
// fetches it again on the next pull and a local one reports it unknown.
// It does nothing when the blob was committed again meanwhile (another
// file id). The error says what happened.
func (s *Store) quarantine(digest string, fileID []byte, why string) error {
	dir := filepath.Join(s.dir, "quarantine")
	defer s.lockBlob(digest)()
	rec, err := s.getBlobRecord(digest)
	if err == nil && rec.keys != nil && bytes.Equal(rec.keys.fileID, fileID) {
		_, hx, _ := strings.Cut(digest, ":")
		dst := filepath.Join(dir, hx+"."+hex.EncodeToString(fileID)+".enc")
		moveErr := os.MkdirAll(dir, 0o750)
		if moveErr == nil {
			moveErr = os.Rename(s.encPath(digest), dst)
		}
		s.dropIndexLocked(digest, rec.info)
		s.log.Error("encrypted blob is corrupt on disk; it is never served, its file was moved to quarantine",
			zap.String("digest", digest), zap.String("why", why), zap.String("file", dst), zap.Error(moveErr))
	}
	return fmt.Errorf("%w: blob %s %s; it was taken out of service (its file moved to %s): a cached blob is fetched again on the next pull, a pushed one must be pushed again",
		ErrCorrupt, digest, why, dir)
}
