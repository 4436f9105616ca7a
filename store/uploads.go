package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// Upload is an open blob upload session. Its bytes live in uploads/<id>, so
// a session survives a restart.
type Upload struct {
	ID        string    `json:"id"`
	Repo      string    `json:"repo"`
	CreatedAt time.Time `json:"createdAt"`
}

func (s *Store) uploadPath(id string) string { return filepath.Join(s.dir, "uploads", id) }

// CreateUpload opens a session for repo.
func (s *Store) CreateUpload(ctx context.Context, repo string) (*Upload, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	u := &Upload{ID: hex.EncodeToString(b[:]), Repo: repo, CreatedAt: s.now()}
	if err := os.MkdirAll(filepath.Join(s.dir, "uploads"), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.uploadPath(u.ID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	f.Close()
	s.touchUpload(u.ID)
	v, _ := json.Marshal(u)
	if err := s.db.Set(uploadKey(u.ID), v, pebble.Sync); err != nil {
		os.Remove(s.uploadPath(u.ID))
		return nil, err
	}
	return u, nil
}

// GetUpload returns an open session and its current size, or ErrNotFound.
func (s *Store) GetUpload(ctx context.Context, id string) (*Upload, int64, error) {
	v, err := s.get(uploadKey(id))
	if err != nil {
		return nil, 0, err
	}
	var u Upload
	if err := json.Unmarshal(v, &u); err != nil {
		return nil, 0, fmt.Errorf("upload %s: corrupt record: %w", id, err)
	}
	st, err := os.Stat(s.uploadPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		_ = s.db.Delete(uploadKey(id), pebble.Sync)
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return &u, st.Size(), nil
}

// AppendUpload appends r to the session's bytes and returns the new size.
// A failed write is cut back, so the session keeps only whole chunks.
func (s *Store) AppendUpload(ctx context.Context, id string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(s.uploadPath(id), os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		_ = f.Truncate(start)
		return start, err
	}
	s.touchUpload(id)
	return start + n, nil
}

// touchUpload sets the session file's modification time to the store's
// clock: the time of its last append, which ExpireUploads measures idleness
// from.
func (s *Store) touchUpload(id string) {
	now := s.now()
	_ = os.Chtimes(s.uploadPath(id), now, now)
}

// lastActive is when a session last received bytes (or was created).
func (s *Store) lastActive(u Upload) time.Time {
	if st, err := os.Stat(s.uploadPath(u.ID)); err == nil && st.ModTime().After(u.CreatedAt) {
		return st.ModTime()
	}
	return u.CreatedAt
}

// DeleteUpload ends a session and removes its bytes.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	if err := s.db.Delete(uploadKey(id), pebble.Sync); err != nil {
		return err
	}
	if err := os.Remove(s.uploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// CommitUpload checks that the session's bytes hash to digest, moves them
// into the blob store (or drops them when the blob is already there) and
// ends the session. On a mismatch the session stays open.
func (s *Store) CommitUpload(ctx context.Context, id, digest string) (int64, error) {
	if rec, err := s.getBlobRecord(digest); s.encryptLocal() && (err != nil || rec.keys == nil) {
		return s.sealUpload(ctx, id, digest)
	}
	h, hx, err := splitDigest(digest)
	if err != nil {
		return 0, err
	}
	path := s.uploadPath(id)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hx {
		return 0, fmt.Errorf("%w: uploaded bytes hash to %s, not %s", ErrDigestMismatch, got, digest)
	}
	if _, err := s.StatBlob(ctx, digest); err == nil {
		// Stored already (pulled through, or pushed elsewhere): keep one copy.
		if err := s.RefreshBlob(ctx, digest); err != nil {
			return 0, err
		}
		return n, s.DeleteUpload(ctx, id)
	}
	if err := s.moveIntoPlace(path, digest, n, nil, nil); err != nil {
		return 0, err
	}
	return n, s.db.Delete(uploadKey(id), pebble.Sync)
}

// sealUpload commits an upload to a local repository encrypted: its bytes
// are hashed and sealed in one pass into a new blob file, which replaces
// a plaintext copy stored already. On a mismatch the session stays open.
func (s *Store) sealUpload(ctx context.Context, id, digest string) (int64, error) {
	f, err := os.Open(s.uploadPath(id))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, err := s.newBlobWriter(ctx, digest, -1, true)
	if err != nil {
		return 0, err
	}
	// Plain Reader and Writer: io.Copy uses the buffer, not the file's WriteTo.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{f}, make([]byte, 256<<10))
	if err != nil {
		w.Abort()
		return 0, err
	}
	if err := w.Commit(ctx); err != nil {
		return 0, fmt.Errorf("uploaded bytes: %w", err)
	}
	return n, s.DeleteUpload(ctx, id)
}

// moveIntoPlace makes a verified file a committed blob: fsync the file,
// rename it into place, fsync the directory, then index it (synced), with
// its origin's records when o is set, and its wrapped data key when keys
// is set (an encrypted file). Encryption sticks to a digest (see
// keepEncrypted).
func (s *Store) moveIntoPlace(path, digest string, size int64, o *Origin, keys *blobKeys) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	final := s.fileOf(digest, blobRecord{keys: keys})
	dir := filepath.Dir(final)
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	defer s.writeRefs(&Referenced{Blobs: []string{digest}})()
	defer s.lockBlob(digest)()
	old, oldErr := s.getBlobRecord(digest)
	if oldErr == nil && old.keys != nil && keys == nil {
		return s.keepEncrypted(path, digest, o)
	}
	if err := os.Rename(path, final); err != nil {
		return fmt.Errorf("move blob into place: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if statErr != nil {
		// The shard directory is new: make its own entry durable too.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	now := s.now()
	_ = b.Set(blobKey(digest), blobRecord{info: BlobInfo{Size: size}, created: now, keys: keys}.encode(), nil)
	if o != nil {
		o.write(b, digest, now)
	}
	// Two fills of one digest for different routes may commit at once:
	// the totals count it once.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	_, existed := s.get(blobKey(digest))
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if existed != nil {
		s.blobBytes.Add(size)
		s.blobCount.Add(1)
	}
	if oldErr == nil && old.keys == nil && keys != nil {
		// A plaintext copy was encrypted: the old file goes.
		if err := os.Remove(s.blobPath(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// keepEncrypted ends a plaintext commit of a blob stored encrypted (a fill
// of a cached repository under scope local that raced a push): the
// encrypted copy stays, the new file goes, and the commit's origin records
// are written. The caller holds the digest's blobMu.
func (s *Store) keepEncrypted(path, digest string, o *Origin) error {
	os.Remove(path)
	if o == nil {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	o.write(b, digest, s.now())
	return b.Commit(pebble.Sync)
}

// ExpireUploads removes sessions that received no bytes for maxAge (idle
// since their last append, or since they were opened), and files in
// uploads/ that have no session.
func (s *Store) ExpireUploads(ctx context.Context, maxAge time.Duration) (int, error) {
	cutoff := s.now().Add(-maxAge)
	var old []string
	live := map[string]bool{}
	err := s.scan(ctx, prefixUpload, func(k, v []byte) error {
		var u Upload
		if json.Unmarshal(v, &u) != nil || s.lastActive(u).Before(cutoff) {
			old = append(old, string(k))
		} else {
			live[string(k)] = true
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range old {
		if err := s.DeleteUpload(ctx, id); err != nil {
			return 0, err
		}
	}
	n := len(old)
	entries, err := os.ReadDir(filepath.Join(s.dir, "uploads"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return n, err
	}
	for _, e := range entries {
		// A file without a session is left by a crash between creating the
		// file and its record; one younger than the cutoff may belong to a
		// session being created right now.
		if live[e.Name()] || containsID(old, e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(s.dir, "uploads", e.Name()))
			n++
		}
	}
	if n > 0 {
		s.log.Info("expired upload sessions", zap.Int("count", n))
	}
	return n, nil
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
