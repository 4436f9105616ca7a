package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// Encryption turns on encryption at rest (docs/security.md).
type Encryption struct {
	// Key is the master key (KeySize bytes); nil leaves encryption off.
	Key []byte
	// KeyFile is where Key was read: recorded with the store's key check
	// and named in messages.
	KeyFile string
	// All encrypts cached (pulled-through) content too; otherwise only
	// what local repositories hold.
	All bool
	// ReadKey reads a key file (the one a rotation interrupted by a crash
	// recorded); required to resume one.
	ReadKey func(path string) ([]byte, error)
}

// keyRecord is the key check (enc/check) and an interrupted rotation's
// record (enc/rotation).
type keyRecord struct {
	Key  string    `json:"key"`
	File string    `json:"file"`
	At   time.Time `json:"at"`
	// From and FromFile: the key a rotation rewraps from (rotation only).
	From     string `json:"from,omitempty"`
	FromFile string `json:"fromFile,omitempty"`
}

// keyring is the master keys a node holds: the current one, and during a
// rotation the one it rotates from.
type keyring struct {
	all bool

	mu      sync.RWMutex
	cur     *masterKey
	curFile string
	keys    map[string]*masterKey // by fingerprint
}

func (k *keyring) current() *masterKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.cur
}

// byFingerprint is the key that wrapped a record.
func (k *keyring) byFingerprint(fp string) (*masterKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if mk, ok := k.keys[fp]; ok {
		return mk, nil
	}
	return nil, fmt.Errorf("%w: a record is wrapped by key %s, which this node does not hold (its key is %s)", ErrWrongKey, fp, k.cur.fp)
}

// encryptLocal and encryptCached say whether new content of a local or a
// cached repository is encrypted.
func (s *Store) encryptLocal() bool  { return s.enc != nil }
func (s *Store) encryptCached() bool { return s.enc != nil && s.enc.all }

// EncryptionStatus describes encryption at rest for the admin API.
type EncryptionStatus struct {
	Enabled bool   `json:"enabled"`
	Scope   string `json:"scope,omitempty"`
	Key     string `json:"keyFingerprint,omitempty"`
	KeyFile string `json:"keyFile,omitempty"`
}

// Encryption says whether encryption is on, its scope and key.
func (s *Store) Encryption() EncryptionStatus {
	if s.enc == nil {
		return EncryptionStatus{}
	}
	s.enc.mu.RLock()
	defer s.enc.mu.RUnlock()
	st := EncryptionStatus{Enabled: true, Scope: "local", Key: s.enc.cur.fp, KeyFile: s.enc.curFile}
	if s.enc.all {
		st.Scope = "all"
	}
	return st
}

func (s *Store) getKeyRecord(key []byte) (*keyRecord, error) {
	v, err := s.get(key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r keyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%s: corrupt record: %w", key, err)
	}
	return &r, nil
}

// initEncryption checks the configured key against the store's key check,
// writes the check on a first start with encryption, and finishes a
// rotation a crash interrupted.
func (s *Store) initEncryption(ctx context.Context, e *Encryption) error {
	check, err := s.getKeyRecord(keyCheckKey)
	if err != nil {
		return err
	}
	if e == nil || e.Key == nil {
		if check != nil {
			return fmt.Errorf("%w: this store holds encrypted content (key %s, from %s) and no encryption key is configured: set encryption.keyFile to that key; turning encryption off does not decrypt what is stored",
				ErrWrongKey, check.Key, check.File)
		}
		return nil
	}
	mk, err := newMasterKey(e.Key)
	if err != nil {
		return err
	}
	s.enc = &keyring{all: e.All, cur: mk, curFile: e.KeyFile, keys: map[string]*masterKey{mk.fp: mk}}
	rot, err := s.getKeyRecord(rotationKey)
	if err != nil {
		return err
	}
	if rot != nil {
		return s.resumeRotation(ctx, e, rot)
	}
	if check == nil {
		s.log.Info("encryption at rest is on; recording the store's key", zap.String("key", mk.fp), zap.String("file", e.KeyFile))
		return s.putKeyRecord(keyCheckKey, keyRecord{Key: mk.fp, File: e.KeyFile, At: s.now()})
	}
	if check.Key != mk.fp {
		return fmt.Errorf("%w: encryption.keyFile %s holds key %s, but this store is encrypted with key %s (recorded from %s on %s): point encryption.keyFile at that key file (after a rotate-key, the new one)",
			ErrWrongKey, e.KeyFile, mk.fp, check.Key, check.File, check.At.UTC().Format(time.RFC3339))
	}
	return nil
}

func (s *Store) putKeyRecord(key []byte, r keyRecord) error {
	v, err := encodeKeyRecord(r)
	if err != nil {
		return err
	}
	return s.db.Set(key, v, pebble.Sync)
}

func encodeKeyRecord(r keyRecord) ([]byte, error) { return json.Marshal(r) }

// blobRecord is a committed blob's index record.
type blobRecord struct {
	info    BlobInfo
	created time.Time
	keys    *blobKeys // nil for a plaintext blob
}

// blobRecordSize is a plaintext blob record's length (see encodeBlob).
const blobRecordSize = 17

func decodeBlobRecord(digest string, v []byte) (blobRecord, error) {
	info, created, ok := decodeBlob(v)
	if !ok {
		return blobRecord{}, fmt.Errorf("blob %s: corrupt record", digest)
	}
	r := blobRecord{info: info, created: created}
	if len(v) > blobRecordSize {
		k, err := decodeBlobKeys(v[blobRecordSize:])
		if err != nil {
			return blobRecord{}, fmt.Errorf("blob %s: %w", digest, err)
		}
		r.keys = k
	}
	return r, nil
}

func (r blobRecord) encode() []byte {
	v := encodeBlob(r.info, r.created)
	if r.keys != nil {
		v = append(v, r.keys.encode()...)
	}
	return v
}

// getBlobRecord reads digest's index record, or ErrNotFound.
func (s *Store) getBlobRecord(digest string) (blobRecord, error) {
	v, err := s.get(blobKey(digest))
	if err != nil {
		return blobRecord{}, err
	}
	return decodeBlobRecord(digest, v)
}

// dataKey unwraps a blob's data key.
func (s *Store) dataKey(digest string, k *blobKeys) ([]byte, error) {
	if s.enc == nil {
		return nil, fmt.Errorf("%w: blob %s is encrypted and no encryption key is configured", ErrWrongKey, digest)
	}
	mk, err := s.enc.byFingerprint(wrappedBy(k.wrapped))
	if err != nil {
		return nil, err
	}
	return mk.unwrap(k.wrapped, k.ad(digest))
}

// newBlobKeys makes a blob's data key and its wrapped form.
func (s *Store) newBlobKeys(digest string) ([]byte, *blobKeys) {
	dk := newDataKey()
	k := &blobKeys{fileID: newDataKey()[:fileIDSize]}
	k.wrapped = s.enc.current().wrap(dk, k.ad(digest))
	return dk, k
}
