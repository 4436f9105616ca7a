// Package cache is a node's store: tags, manifests and the blob index in
// pebble, blob bytes in content-addressed files, hot manifests in ristretto.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dgraph-io/ristretto/v2"
	"go.uber.org/zap"
)

// ErrNotFound is returned when a key is not in the store.
var ErrNotFound = errors.New("not found")

// ErrDigestMismatch is returned when content does not hash to its digest.
var ErrDigestMismatch = errors.New("digest mismatch")

// Options configure a Store.
type Options struct {
	// HotManifestBytes bounds the in-memory manifest cache.
	HotManifestBytes int64
	Logger           *zap.Logger
	// Now is the store's clock (nil: time.Now): upload, blob, link and
	// pull times are read from it.
	Now func() time.Time
	// Encryption turns on encryption at rest; nil leaves it off (a store
	// that holds encrypted content then refuses to open).
	Encryption *Encryption
}

// Store is one node's content store.
type Store struct {
	dir  string
	db   *pebble.DB
	hot  *ristretto.Cache[string, *Manifest]
	log  *zap.Logger
	now  func() time.Time
	tmpN uint64

	// blobBytes and blobCount are the committed blobs' totals, counted at
	// start and kept up to date by commits and deletes.
	blobBytes atomic.Int64
	blobCount atomic.Int64

	// tags caches tag records in memory (they are read on every pull by
	// tag); every write of a tag goes through it (readcache.go).
	tags readCache[Tag]
	// imageTypes caches what a manifest GET needs of an image record (that
	// it exists, and its media type: visible.go), by its key; every write
	// or delete of image records goes through it (keys.go lists them).
	imageTypes readCache[string]
	// hotMu and hotGen keep a manifest read from pebble before a delete
	// committed out of hot: a delete bumps hotGen and drops the digest
	// (before its write and again after), under hotMu held exclusively;
	// a read that missed puts what it read in hot only if hotGen has not
	// moved since its lookup, under hotMu held shared, so its Set is
	// queued before the delete's last Del.
	hotMu  sync.RWMutex
	hotGen uint64
	// readHook, when set (tests), is called with the key of every point
	// read of pebble (view), after the read.
	readHook atomic.Pointer[func(key []byte)]

	// access holds the access times not yet written (access.go).
	access *accessTable
	// imageMu orders the rewrites of image records by an access time
	// flush (held exclusively) with the batches that write or delete
	// image records (held shared), so a flush never brings back a
	// record deleted after it read it.
	imageMu sync.RWMutex

	// refMu is held shared by every write that makes content referenced
	// (a blob commit, a batch with manifests, image records or links)
	// around its commit, and exclusively by a deleter making one deletion
	// (Watch.Hold, refwatch.go); watches, written under it exclusively,
	// are the deleters' records of those writes. Taken before blobMu and
	// imageMu.
	refMu   sync.RWMutex
	watches []*Watch

	// commitMu orders blob index writes with the totals they change.
	commitMu sync.Mutex
	// blobMu serializes, per digest (striped), the moves of a blob's file
	// with its index entry: a commit's rename and index write, a delete's
	// index delete and unlink. So a delete never unlinks a file a new
	// commit of the same digest just renamed into place, and an open that
	// finds no file sees either both or neither. Taken before commitMu.
	blobMu [64]sync.Mutex

	// enc holds the master keys; nil when encryption is off. rotMu runs
	// one key rotation at a time.
	enc   *keyring
	rotMu sync.Mutex
	// scanMu orders scan record writes and a rotation's rewrap of them.
	scanMu sync.Mutex
}

// lockBlob locks digest's stripe of blobMu and returns its unlock.
func (s *Store) lockBlob(digest string) func() {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(digest); i++ {
		h = (h ^ uint32(digest[i])) * 16777619
	}
	mu := &s.blobMu[h%uint32(len(s.blobMu))]
	mu.Lock()
	return mu.Unlock
}

// Stats are the store's totals.
type Stats struct {
	BlobBytes int64
	Blobs     int64
}

// Stats returns the committed blobs' totals.
func (s *Store) Stats() Stats {
	return Stats{BlobBytes: s.blobBytes.Load(), Blobs: s.blobCount.Load()}
}

// Open opens (or creates) the store under dir and removes what a crash may
// have left: partial fills in tmp/ and blob files that were never indexed.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.HotManifestBytes <= 0 {
		opts.HotManifestBytes = 64 << 20
	}
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "blobs")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	db, err := pebble.Open(filepath.Join(dir, "db"), pebbleOptions(opts.Logger))
	if err != nil {
		return nil, fmt.Errorf("open pebble in %s: %w", dir, err)
	}
	hot, err := ristretto.NewCache(&ristretto.Config[string, *Manifest]{
		NumCounters: 100_000,
		MaxCost:     opts.HotManifestBytes,
		BufferItems: 64,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("hot cache: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{dir: dir, db: db, hot: hot, log: opts.Logger, now: opts.Now, access: newAccessTable()}
	go s.flushAccess()
	if err := s.initEncryption(ctx, opts.Encryption); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close flushes and closes the store.
func (s *Store) Close() error {
	err := s.closeAccess()
	s.hot.Close()
	return errors.Join(err, s.db.Close())
}

// Dir is the store's data directory.
func (s *Store) Dir() string { return s.dir }

type pebbleLogger struct{ l *zap.SugaredLogger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debugf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Errorf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) { p.l.Fatalf(format, args...) }

// view calls fn with the value at key, valid only during the call (a
// point read that decodes without copying the value first), or returns
// ErrNotFound.
func (s *Store) view(key []byte, fn func(v []byte) error) error {
	v, closer, err := s.db.Get(key)
	if h := s.readHook.Load(); h != nil {
		(*h)(key)
	}
	if errors.Is(err, pebble.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return fn(v)
}

// get returns a copy of the value at key, or ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) {
	var out []byte
	err := s.view(key, func(v []byte) error {
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Tag is a tag's mapping to a manifest digest.
type Tag struct {
	Digest    string
	FetchedAt time.Time
	// Policy names the freshness policy the upstream last confirmed the
	// tag under ("tagPolicies[0]", "ttl"); empty for tags of local
	// repositories and records of older versions.
	Policy string
}

// GetTag returns the tag of repo in namespace ns.
func (s *Store) GetTag(ctx context.Context, ns, repo, tag string) (Tag, error) {
	key := tagKey(ns, repo, tag)
	t, ok, gen := s.tags.get(key)
	if ok {
		return t, nil
	}
	err := s.view(key, func(v []byte) error {
		if len(v) < 8 {
			return fmt.Errorf("tag %s:%s: corrupt record", repo, tag)
		}
		t = decodeTag(v) // copies
		return nil
	})
	if err != nil {
		return Tag{}, err
	}
	s.tags.cacheRead(key, t, gen)
	return t, nil
}

// PutTag records a tag mapping. It is synced: a tag must never point at a
// manifest a crash lost, so callers store the manifest first.
func (s *Store) PutTag(ctx context.Context, ns, repo, tag string, t Tag) error {
	key := tagKey(ns, repo, tag)
	s.tags.drop(key)
	err := s.db.Set(key, encodeTag(t), pebble.Sync)
	// Dropped, not set: of two writes of one tag, the one that commits
	// first could set it last. The next GET reads it.
	s.tags.drop(key)
	return err
}

// DeleteTag removes a tag mapping.
func (s *Store) DeleteTag(ctx context.Context, ns, repo, tag string) error {
	key := tagKey(ns, repo, tag)
	s.tags.drop(key)
	err := s.db.Delete(key, pebble.Sync)
	// Again: a GET that looked the tag up after the first drop and read
	// it before the delete may have cached it meanwhile.
	s.tags.drop(key)
	return err
}

// ListTags returns the tags of repo in namespace ns, sorted.
func (s *Store) ListTags(ctx context.Context, ns, repo string) ([]string, error) {
	p := tagPrefix(ns, repo)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var tags []string
	for it.First(); it.Valid(); it.Next() {
		tags = append(tags, string(it.Key()[len(p):]))
	}
	return tags, it.Error()
}

// Manifest is a stored manifest.
type Manifest struct {
	MediaType string
	Body      []byte
}

// hotEntryOverhead is what a hot manifest holds beyond its body and media
// type: the Manifest value, the allocations' rounding and ristretto's maps.
// With the media type counted twice (in the record the body is cut from,
// and as a string) and ristretto's own 48 bytes an entry, an entry of a
// 10-byte body comes to the 267 bytes of heap measured for one.
const hotEntryOverhead = 128

// hotCost is a manifest's cost in the hot cache: the memory it holds
// there, so that cache.hotManifestBytes bounds many small manifests as
// strictly as a few large ones, not only their bodies.
func hotCost(m *Manifest) int64 {
	return int64(len(m.Body) + 2*len(m.MediaType) + hotEntryOverhead)
}

// GetManifest returns the manifest with the given digest, from memory when
// it is hot.
func (s *Store) GetManifest(ctx context.Context, digest string) (*Manifest, error) {
	return s.manifest(digest)
}

func (s *Store) manifest(digest string) (*Manifest, error) { return s.readManifest(digest, true) }

// readManifest returns a manifest from memory when it is hot, else from
// pebble, making it hot when keep is set (a pass over the whole store
// does not: it would push out what pulls keep reading).
func (s *Store) readManifest(digest string, keep bool) (*Manifest, error) {
	if m, ok := s.hot.Get(digest); ok {
		return m, nil
	}
	s.hotMu.RLock()
	gen := s.hotGen
	s.hotMu.RUnlock()
	v, err := s.get(manifestKey(digest))
	if err != nil {
		return nil, err
	}
	if sealedManifest(v) {
		if v, err = s.openManifest(digest, v); err != nil {
			return nil, err
		}
	}
	if len(v) < 2 {
		return nil, fmt.Errorf("manifest %s: corrupt record", digest)
	}
	n := int(v[0])<<8 | int(v[1])
	if len(v) < 2+n {
		return nil, fmt.Errorf("manifest %s: corrupt record", digest)
	}
	m := &Manifest{MediaType: string(v[2 : 2+n]), Body: v[2+n:]}
	if keep {
		s.hotMu.RLock()
		if s.hotGen == gen {
			s.hot.Set(digest, m, hotCost(m))
		}
		s.hotMu.RUnlock()
	}
	return m, nil
}

// dropHot takes digest out of the hot manifests for a delete of it:
// before the delete's write, and again after it.
func (s *Store) dropHot(digest string) {
	s.hotMu.Lock()
	defer s.hotMu.Unlock()
	s.hotGen++
	s.hot.Del(digest)
}

// encodeManifest is a manifest record: len(mediaType) (2) | mediaType | body.
func encodeManifest(m *Manifest) ([]byte, error) {
	if len(m.MediaType) >= 0xffff { // 0xffff marks an encrypted record
		return nil, fmt.Errorf("media type too long")
	}
	v := make([]byte, 0, 2+len(m.MediaType)+len(m.Body))
	v = append(v, byte(len(m.MediaType)>>8), byte(len(m.MediaType)))
	v = append(v, m.MediaType...)
	return append(v, m.Body...), nil
}

// encodeTag is a tag record: fetchedAt (8) | digest [| 0x00 | policy].
func encodeTag(t Tag) []byte {
	v := putTime(make([]byte, 0, 9+len(t.Digest)+len(t.Policy)), t.FetchedAt)
	v = append(v, t.Digest...)
	if t.Policy != "" {
		v = append(append(v, 0), t.Policy...)
	}
	return v
}

// decodeTag reads what encodeTag wrote (len(v) >= 8).
func decodeTag(v []byte) Tag {
	d, policy, _ := strings.Cut(string(v[8:]), "\x00")
	return Tag{FetchedAt: getTime(v), Digest: d, Policy: policy}
}

// PutManifest stores a manifest after checking that body hashes to digest.
// A manifest stored already keeps its media type (see firstType).
func (s *Store) PutManifest(ctx context.Context, digest string, m *Manifest) error {
	if err := verifyBytes(digest, m.Body); err != nil {
		return err
	}
	m = s.firstType(digest, m)
	v, err := s.manifestRecord(digest, m, s.encryptCached())
	if err != nil {
		return err
	}
	defer s.writeRefs(&Referenced{Manifests: []string{digest}})()
	if err := s.db.Set(manifestKey(digest), v, pebble.Sync); err != nil {
		return err
	}
	s.hot.Set(digest, m, hotCost(m))
	return nil
}

// Touch records an access to a digest (access.go): it is written with
// the next flush of access times, not synced.
func (s *Store) Touch(ctx context.Context, digest string) error {
	return s.recordAccess(ctx, accessKey(digest), s.now())
}

// LastAccess returns when a digest was last touched, including an access
// not written yet.
func (s *Store) LastAccess(ctx context.Context, digest string) (time.Time, error) {
	key := accessKey(digest)
	v, err := s.get(key)
	if errors.Is(err, ErrNotFound) {
		if t := s.access.latest(key, time.Time{}); !t.IsZero() {
			return t, nil
		}
	}
	if err != nil {
		return time.Time{}, err
	}
	return s.access.latest(key, getTime(v)), nil
}
