package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// Rotation is what a key rotation did.
type Rotation struct {
	From      string        `json:"from"`
	To        string        `json:"to"`
	ToFile    string        `json:"toFile"`
	Blobs     int           `json:"blobsRewrapped"`
	Manifests int           `json:"manifestsRewrapped"`
	Scans     int           `json:"scansRewrapped"`
	Duration  time.Duration `json:"duration"`
	Unchanged bool          `json:"unchanged,omitempty"`
}

// RotateKey makes newKey (read from newFile) the store's master key,
// online: it records the rotation (enc/rotation), wraps every new data key
// with the new key from then on, rewraps every data key wrapped by the old
// one (blob, manifest and scan records; no blob file is read or written), then
// records the new key as the store's and drops the rotation record in one
// synced write. A crash part way leaves the rotation record: the next
// start, with either key file configured, reads the other from the path
// the record names and finishes it (see resumeRotation). Reads go on
// throughout: the node holds both keys until it stops.
func (s *Store) RotateKey(ctx context.Context, newKey []byte, newFile string) (Rotation, error) {
	if s.enc == nil {
		return Rotation{}, errors.New("encryption at rest is off: set encryption.keyFile (and restart) before rotating its key")
	}
	nk, err := newMasterKey(newKey)
	if err != nil {
		return Rotation{}, err
	}
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	s.enc.mu.RLock()
	cur, curFile := s.enc.cur, s.enc.curFile
	s.enc.mu.RUnlock()
	if nk.fp == cur.fp {
		return Rotation{From: cur.fp, To: nk.fp, ToFile: newFile, Unchanged: true}, nil
	}
	rec := keyRecord{Key: nk.fp, File: newFile, At: s.now(), From: cur.fp, FromFile: curFile}
	if err := s.putKeyRecord(rotationKey, rec); err != nil {
		return Rotation{}, err
	}
	s.enc.adopt(nk, newFile)
	return s.rewrap(ctx, rec)
}

// adopt makes mk the current key, keeping the others for records they
// still wrap.
func (k *keyring) adopt(mk *masterKey, file string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[mk.fp] = mk
	k.cur, k.curFile = mk, file
}

// resumeRotation finishes a rotation a crash interrupted: the configured
// key is either end of it; the other is read from the file the record
// names.
func (s *Store) resumeRotation(ctx context.Context, e *Encryption, rot *keyRecord) error {
	have := s.enc.cur.fp
	otherFile, otherFP := rot.File, rot.Key
	if have == rot.Key {
		otherFile, otherFP = rot.FromFile, rot.From
	} else if have != rot.From {
		return fmt.Errorf("%w: encryption.keyFile %s holds key %s, but a rotation of this store from key %s (%s) to key %s (%s) was interrupted: configure one of those two key files",
			ErrWrongKey, e.KeyFile, have, rot.From, rot.FromFile, rot.Key, rot.File)
	}
	restore := fmt.Sprintf("a rotation of this store's key from %s (%s) to %s (%s) was interrupted and needs both key files to finish: restore %s (key %s) and start again",
		rot.From, rot.FromFile, rot.Key, rot.File, otherFile, otherFP)
	if e.ReadKey == nil {
		return fmt.Errorf("%w: %s", ErrWrongKey, restore)
	}
	raw, err := e.ReadKey(otherFile)
	if err != nil {
		return fmt.Errorf("%w: %s (%w)", ErrWrongKey, restore, err)
	}
	other, err := newMasterKey(raw)
	if err != nil || other.fp != otherFP {
		return fmt.Errorf("%w: %s (%s now holds another key)", ErrWrongKey, restore, otherFile)
	}
	s.enc.adopt(other, otherFile)
	if have == rot.Key {
		s.enc.adopt(s.enc.keys[have], e.KeyFile)
	}
	s.log.Warn("finishing a key rotation an earlier run left unfinished", zap.String("from", rot.From), zap.String("to", rot.Key))
	r, err := s.rewrap(ctx, *rot)
	if err != nil {
		return fmt.Errorf("finish the interrupted key rotation: %w", err)
	}
	if have != rot.Key {
		s.log.Warn("this node now uses the rotated key; set encryption.keyFile to its file before the next start",
			zap.String("key", r.To), zap.String("file", r.ToFile))
	}
	return nil
}

// rewrap rewraps every data key wrapped by rec.From with the current key,
// then records the current key as the store's. Each record is written
// without sync; the last write, synced, makes them all durable (pebble's
// log is written in order).
func (s *Store) rewrap(ctx context.Context, rec keyRecord) (Rotation, error) {
	start := time.Now()
	r := Rotation{From: rec.From, To: rec.Key, ToFile: rec.File}
	var err error
	if r.Blobs, err = s.rewrapEach(ctx, prefixBlob, rec.From, s.rewrapBlob); err != nil {
		return r, err
	}
	if r.Manifests, err = s.rewrapEach(ctx, prefixManifest, rec.From, s.rewrapManifest); err != nil {
		return r, err
	}
	if r.Scans, err = s.rewrapEach(ctx, prefixScan, rec.From, s.rewrapScan); err != nil {
		return r, err
	}
	check, err := encodeKeyRecord(keyRecord{Key: rec.Key, File: rec.File, At: s.now()})
	if err != nil {
		return r, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(keyCheckKey, check, nil)
	_ = b.Delete(rotationKey, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return r, err
	}
	r.Duration = time.Since(start)
	s.log.Info("rotated the encryption key", zap.String("from", r.From), zap.String("to", r.To),
		zap.Int("blobs", r.Blobs), zap.Int("manifests", r.Manifests), zap.Int("scans", r.Scans), zap.Duration("duration", r.Duration))
	return r, nil
}

// rewrapEach calls fn for every record of prefix p, a page of keys at a
// time (no iterator stays open while fn writes), and counts what fn
// rewrapped.
func (s *Store) rewrapEach(ctx context.Context, p []byte, from string, fn func(digest, from string) (bool, error)) (int, error) {
	const page = 1024
	lower, n := p, 0
	for {
		var digests []string
		err := s.scanFrom(ctx, p, lower, page, func(k []byte) { digests = append(digests, string(k)) })
		if err != nil {
			return n, err
		}
		for _, d := range digests {
			done, err := fn(d, from)
			if err != nil {
				return n, fmt.Errorf("rewrap %s: %w", d, err)
			}
			if done {
				n++
			}
		}
		if len(digests) < page {
			return n, nil
		}
		lower = append(join(p, digests[len(digests)-1]), 0)
	}
}

// scanFrom calls fn with up to limit keys of prefix p from lower on
// (without the prefix).
func (s *Store) scanFrom(ctx context.Context, p, lower []byte, limit int, fn func(k []byte)) error {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok, n := it.First(), 0; ok && n < limit; ok, n = it.Next(), n+1 {
		fn(bytes.Clone(it.Key()[len(p):]))
	}
	return it.Error()
}

// rewrapBlob rewraps one blob's data key, under its blobMu so a commit or
// delete of the digest cannot interleave.
func (s *Store) rewrapBlob(digest, from string) (bool, error) {
	defer s.lockBlob(digest)()
	rec, err := s.getBlobRecord(digest)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil || rec.keys == nil || wrappedBy(rec.keys.wrapped) != from {
		return false, err
	}
	dk, err := s.dataKey(digest, rec.keys)
	if err != nil {
		return false, err
	}
	rec.keys.wrapped = s.enc.current().wrap(dk, rec.keys.ad(digest))
	return true, s.db.Set(blobKey(digest), rec.encode(), pebble.NoSync)
}

// rewrapManifest rewraps an encrypted manifest record's data key; the
// sealed body stays as it is.
func (s *Store) rewrapManifest(digest, from string) (bool, error) {
	v, err := s.get(manifestKey(digest))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	done, err := s.rewrapRecord(v, manifestAD(digest), from)
	if err != nil || !done {
		return false, err
	}
	return true, s.db.Set(manifestKey(digest), v, pebble.NoSync)
}

// rewrapScan rewraps an encrypted scan record's data key, under scanMu so
// a newer record written meanwhile is not replaced by this older one.
func (s *Store) rewrapScan(digest, from string) (bool, error) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	v, err := s.get(scanKey(digest))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	done, err := s.rewrapRecord(v, scanAD(digest), from)
	if err != nil || !done {
		return false, err
	}
	return true, s.db.Set(scanKey(digest), v, pebble.NoSync)
}
