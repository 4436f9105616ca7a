package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"berth/internal/oci"

	"github.com/cockroachdb/pebble/v2"
)

// Repository is a local repository's record.
type Repository struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	// Mutability is MUTABLE, IMMUTABLE or IMMUTABLE_WITH_EXCLUSION.
	Mutability string `json:"imageTagMutability"`
	// Exclusions are tag patterns (with * wildcards) that stay mutable
	// under IMMUTABLE_WITH_EXCLUSION.
	Exclusions []string `json:"imageTagMutabilityExclusionFilters,omitempty"`
}

// GetRepository returns a local repository's record or ErrNotFound.
func (s *Store) GetRepository(ctx context.Context, name string) (*Repository, error) {
	v, err := s.get(repoKey(name))
	if err != nil {
		return nil, err
	}
	var r Repository
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("repository %s: corrupt record: %w", name, err)
	}
	return &r, nil
}

// PutRepository writes a repository record.
func (s *Store) PutRepository(ctx context.Context, r *Repository) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Set(repoKey(r.Name), v, pebble.Sync)
}

// PutRepository adds a repository record.
func (b *Batch) PutRepository(r *Repository) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.b.Set(repoKey(r.Name), v, nil)
}

// ListRepositories returns the names of local repositories, sorted.
func (s *Store) ListRepositories(ctx context.Context) ([]string, error) {
	var out []string
	err := s.scan(ctx, prefixRepo, func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

// scan calls fn for every key with prefix p (fn gets the key without the
// prefix, and the value; both valid only during the call).
func (s *Store) scan(ctx context.Context, p []byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key()[len(p):], v); err != nil {
			return err
		}
	}
	return it.Error()
}

// Image is a manifest's membership of a repository.
type Image struct {
	PushedAt     time.Time
	LastPulledAt time.Time
	// MediaType is the type the repository stored the manifest under;
	// empty in records of older versions (the manifest record's applies).
	MediaType string
}

func encodeImage(im Image) []byte {
	v := putTime(make([]byte, 0, 16+len(im.MediaType)), im.PushedAt)
	v = putTime(v, im.LastPulledAt)
	return append(v, im.MediaType...)
}

func decodeImage(v []byte) (Image, bool) {
	if len(v) < 16 {
		return Image{}, false
	}
	return Image{PushedAt: getTime(v), LastPulledAt: getTime(v[8:]), MediaType: mediaType(v[16:])}, true
}

// mediaType is b as a string: one of the manifest media types Berth knows
// without allocating (every image record holds one of them, and the
// image cache keeps many), any other copied.
func mediaType(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case oci.MediaTypeImageManifest:
		return oci.MediaTypeImageManifest
	case oci.MediaTypeImageIndex:
		return oci.MediaTypeImageIndex
	case oci.MediaTypeDockerManifest:
		return oci.MediaTypeDockerManifest
	case oci.MediaTypeDockerList:
		return oci.MediaTypeDockerList
	case oci.MediaTypeDockerSchema1:
		return oci.MediaTypeDockerSchema1
	case oci.MediaTypeDockerSchema1Signed:
		return oci.MediaTypeDockerSchema1Signed
	}
	return string(b)
}

// GetImage returns the image record of digest in repo, or ErrNotFound.
// Its LastPulledAt includes a pull of the last minute not yet written.
func (s *Store) GetImage(ctx context.Context, repo RepoKey, digest string) (Image, error) {
	im, err := s.imageRecord(repo, digest)
	if err != nil {
		return Image{}, err
	}
	im.LastPulledAt = s.access.latest(imageKey(repo, digest), im.LastPulledAt)
	return im, nil
}

// imageRecord is the image record as written. A manifest GET reads what
// it needs of it through the image cache instead (Store.imageType).
func (s *Store) imageRecord(repo RepoKey, digest string) (Image, error) {
	var im Image
	err := s.view(imageKey(repo, digest), func(v []byte) error {
		var ok bool
		if im, ok = decodeImage(v); !ok { // copies
			return fmt.Errorf("image %s@%s: corrupt record", repo, digest)
		}
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	return im, nil
}

// TouchImage records a pull of an image (access.go): its record's
// LastPulledAt is rewritten with the next flush of access times, not
// synced; a record deleted by then is left alone.
func (s *Store) TouchImage(ctx context.Context, repo RepoKey, digest string) error {
	return s.recordAccess(ctx, imageKey(repo, digest), s.now())
}

// ListImages returns the manifest digests of repo with their records.
func (s *Store) ListImages(ctx context.Context, repo RepoKey) (map[string]Image, error) {
	p := append(join(prefixImage, repo.Encode()), 0)
	out := map[string]Image{}
	key := append([]byte(nil), p...)
	err := s.scan(ctx, p, func(k, v []byte) error {
		if im, ok := decodeImage(v); ok {
			key = append(key[:len(p)], k...)
			im.LastPulledAt = s.access.latest(key, im.LastPulledAt)
			out[string(k)] = im
		}
		return nil
	})
	return out, err
}

// LinkState says whether a blob is linked to repo: linked, deleted from
// it, or never seen there (neither).
func (s *Store) LinkState(ctx context.Context, repo RepoKey, digest string) (linked, deleted bool, err error) {
	v, err := s.get(linkKey(repo, digest))
	if err == ErrNotFound {
		return false, false, nil
	}
	if err != nil || len(v) < 1 {
		return false, false, err
	}
	return v[0] == 1, v[0] == 0, nil
}

// ListReferrers returns the descriptors (JSON) of manifests in repo whose
// subject is subject.
func (s *Store) ListReferrers(ctx context.Context, repo RepoKey, subject string) ([][]byte, error) {
	p := append(join(prefixReferrer, repo.Encode(), subject), 0)
	var out [][]byte
	err := s.scan(ctx, p, func(_, v []byte) error {
		out = append(out, bytes.Clone(v))
		return nil
	})
	return out, err
}

// Batch groups writes that must land together: a manifest with its tag,
// image record, links and referrer entry. Nothing is visible until Commit,
// and a crash leaves either all or none of it.
type Batch struct {
	s    *Store
	b    *pebble.Batch
	m    []manifestEntry
	tags [][]byte // keys of the tags written, dropped from the cache again after Commit
	// done is set by Commit and Close: the pebble batch goes back to its
	// pool on the first, and must not be closed again (another goroutine
	// may already be using it).
	done bool
	// local is set by an image record of a local repository: the batch's
	// manifests are then encrypted when encryption is on.
	local bool
	// images is set by a write of an image record: Commit then holds
	// the store's imageMu shared. imageKeys are the records written, for
	// the image cache.
	images    bool
	imageKeys [][]byte
	// droppedManifests are the manifests deleted, dropped from hot again
	// after Commit (dropHot).
	droppedManifests []string
	// refs is what the batch makes referenced (see Store.writeRefs).
	refs Referenced
}

type manifestEntry struct {
	digest string
	m      *Manifest
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, b: s.db.NewBatch()} }

// PutManifest adds a manifest after checking its digest. A manifest stored
// already keeps its media type (see firstType); repositories keep theirs in
// their image records.
func (b *Batch) PutManifest(digest string, m *Manifest) error {
	if err := verifyBytes(digest, m.Body); err != nil {
		return err
	}
	m = b.s.firstType(digest, m)
	if _, err := encodeManifest(m); err != nil {
		return err
	}
	// Written at Commit: whether it is encrypted depends on the image
	// records of the batch (see Commit).
	b.m = append(b.m, manifestEntry{digest, m})
	b.refs.Manifests = append(b.refs.Manifests, digest)
	return nil
}

// DeleteManifest removes a manifest body.
func (b *Batch) DeleteManifest(digest string) error {
	b.s.dropHot(digest)
	b.droppedManifests = append(b.droppedManifests, digest)
	b.m = slices.DeleteFunc(b.m, func(e manifestEntry) bool { return e.digest == digest })
	return b.b.Delete(manifestKey(digest), nil)
}

// PutTag maps a tag.
func (b *Batch) PutTag(ns, repo, tag string, t Tag) error {
	key := tagKey(ns, repo, tag)
	b.s.tags.drop(key)
	b.tags = append(b.tags, key)
	return b.b.Set(key, encodeTag(t), nil)
}

// DeleteTag removes a tag.
func (b *Batch) DeleteTag(ns, repo, tag string) error {
	key := tagKey(ns, repo, tag)
	b.s.tags.drop(key)
	b.tags = append(b.tags, key)
	return b.b.Delete(key, nil)
}

// PutImage records that digest belongs to repo.
func (b *Batch) PutImage(repo RepoKey, digest string, im Image) error {
	b.local = b.local || !repo.Cached()
	b.images = true
	b.refs.Images = append(b.refs.Images, ImageKey{repo, digest})
	b.refs.Manifests = append(b.refs.Manifests, digest)
	return b.b.Set(b.imageKey(repo, digest), encodeImage(im), nil)
}

// DeleteImage removes digest from repo.
func (b *Batch) DeleteImage(repo RepoKey, digest string) error {
	return b.b.Delete(b.imageKey(repo, digest), nil)
}

// imageKey is the key of an image record the batch writes: its cached
// copy is dropped now, and again after Commit (readcache.go).
func (b *Batch) imageKey(repo RepoKey, digest string) []byte {
	key := imageKey(repo, digest)
	b.s.imageTypes.drop(key)
	b.images = true
	b.imageKeys = append(b.imageKeys, key)
	return key
}

// Link links blobs to repo.
func (b *Batch) Link(repo RepoKey, digests ...string) error {
	v := putTime([]byte{1}, b.s.now())
	for _, d := range digests {
		if err := b.b.Set(linkKey(repo, d), v, nil); err != nil {
			return err
		}
	}
	b.refs.Blobs = append(b.refs.Blobs, digests...)
	return nil
}

// Unlink marks a blob deleted from repo.
func (b *Batch) Unlink(repo RepoKey, digest string) error {
	return b.b.Set(linkKey(repo, digest), putTime([]byte{0}, b.s.now()), nil)
}

// PutReferrer records that digest (described by desc) refers to subject.
func (b *Batch) PutReferrer(repo RepoKey, subject, digest string, desc []byte) error {
	return b.b.Set(referrerKey(repo, subject, digest), desc, nil)
}

// DeleteReferrer removes a referrer entry.
func (b *Batch) DeleteReferrer(repo RepoKey, subject, digest string) error {
	return b.b.Delete(referrerKey(repo, subject, digest), nil)
}

// Commit applies the batch durably.
func (b *Batch) Commit() error {
	b.done = true
	defer b.b.Close()
	seal := b.s.encryptCached() || b.local && b.s.encryptLocal()
	for _, e := range b.m {
		v, err := b.s.manifestRecord(e.digest, e.m, seal)
		if err == nil {
			err = b.b.Set(manifestKey(e.digest), v, nil)
		}
		if err != nil {
			return err
		}
	}
	if !b.refs.empty() {
		defer b.s.writeRefs(&b.refs)()
	}
	if b.images {
		b.s.imageMu.RLock()
		defer b.s.imageMu.RUnlock()
	}
	err := b.b.Commit(pebble.Sync)
	// Dropped, not set: of two batches writing one record, the one
	// that commits first could set it last.
	for _, k := range b.imageKeys {
		b.s.imageTypes.drop(k)
	}
	for _, k := range b.tags {
		b.s.tags.drop(k)
	}
	for _, d := range b.droppedManifests {
		b.s.dropHot(d)
	}
	if err != nil {
		return err
	}
	for _, e := range b.m {
		b.s.hot.Set(e.digest, e.m, hotCost(e.m))
	}
	return nil
}

// Close discards an uncommitted batch; after Commit it does nothing.
func (b *Batch) Close() {
	if b.done {
		return
	}
	b.done = true
	_ = b.b.Close()
}

// RefreshBlob restarts a blob's grace period (it was uploaded or linked
// again), so garbage collection does not take it from under a push.
func (s *Store) RefreshBlob(ctx context.Context, digest string) error {
	if _, _, err := splitDigest(digest); err != nil {
		return err
	}
	defer s.lockBlob(digest)()
	rec, err := s.getBlobRecord(digest)
	if err != nil {
		return err
	}
	rec.created = s.now()
	return s.db.Set(blobKey(digest), rec.encode(), pebble.Sync)
}

// DeleteBlob removes a committed blob's bytes, index entry, access time,
// origin records and its link records in the repositories links names, in
// one batch. Callers (garbage collection, eviction) make sure nothing
// references it, with the writes that could reference it held off
// (Watch.Hold).
func (s *Store) DeleteBlob(ctx context.Context, digest string, links []RepoKey) error {
	if _, _, err := splitDigest(digest); err != nil {
		return err
	}
	defer s.lockBlob(digest)()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(blobKey(digest), nil)
	_ = b.Delete(accessKey(digest), nil)
	_ = b.DeleteRange(originPrefix(digest), upperBound(originPrefix(digest)), nil)
	for _, r := range links {
		_ = b.Delete(linkKey(r, digest), nil)
	}
	s.commitMu.Lock()
	info, statErr := s.StatBlob(ctx, digest)
	s.imageMu.RLock() // a flush of access times sees the blob or not
	err := b.Commit(pebble.Sync)
	s.access.forget(accessKey(digest))
	s.imageMu.RUnlock()
	if err == nil && statErr == nil {
		s.blobBytes.Add(-info.Size)
		s.blobCount.Add(-1)
	}
	s.commitMu.Unlock()
	if err != nil {
		return err
	}
	for _, p := range []string{s.blobPath(digest), s.encPath(digest)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
