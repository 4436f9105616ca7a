package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// This file is the visibility rule: which stored content a repository
// sees. Content is stored once per digest, but a repository sees only what
// belongs to it:
//
//   - a blob linked to it (lnk/ state 1): for a local repository one
//     uploaded, mounted or referenced by its manifests; for a cached one a
//     blob fetched for it or confirmed by its upstream;
//   - for a cached repository, also a blob its upstream rule fetched
//     without credentials for any of the rule's repositories (org/);
//   - a manifest it has an image record for (img/), under that record's
//     media type.
//
// Everything else is answered exactly as if it were not stored
// (ErrNotFound), so a digest opens nothing across repositories or rules.

// Origin is where a fetched blob came from: the cached repository it was
// fetched for, and whether every cached repository of that upstream rule
// may see it. Shared must be false for a rule with credentials: what it
// fetches stays with the one repository.
type Origin struct {
	Repo   RepoKey
	Shared bool
}

func (o Origin) check() error {
	if !o.Repo.Cached() {
		return fmt.Errorf("blob origin %s is not a cached repository", o.Repo)
	}
	return nil
}

// write adds o's records for digest to b.
func (o Origin) write(b *pebble.Batch, digest string, now time.Time) {
	_ = b.Set(linkKey(o.Repo, digest), putTime([]byte{1}, now), nil)
	if o.Shared {
		_ = b.Set(originKey(digest, o.Repo.Upstream), putTime(nil, now), nil)
	}
}

// LinkOrigin records that blobs already stored were fetched from, or
// confirmed by, o's upstream for o's repository.
func (b *Batch) LinkOrigin(o Origin, digests ...string) error {
	if err := o.check(); err != nil {
		return err
	}
	now := b.s.now()
	for _, d := range digests {
		o.write(b.b, d, now)
	}
	b.refs.Blobs = append(b.refs.Blobs, digests...)
	return nil
}

// Visible returns a committed blob's info when repo sees it, and
// ErrNotFound both when the blob is not stored and when it is stored but
// repo does not see it. Both answers cost the same lookups.
func (s *Store) Visible(ctx context.Context, repo RepoKey, digest string) (BlobInfo, error) {
	if _, _, err := splitDigest(digest); err != nil {
		return BlobInfo{}, err
	}
	sees, err := s.sees(repo, digest)
	if err != nil {
		return BlobInfo{}, err
	}
	info, err := s.StatBlob(ctx, digest)
	if err != nil {
		return BlobInfo{}, err
	}
	if !sees {
		return BlobInfo{}, ErrNotFound
	}
	return info, nil
}

// sees reads repo's link and, for a cached repository, its rule's origin
// record of digest.
func (s *Store) sees(repo RepoKey, digest string) (bool, error) {
	v, err := s.get(linkKey(repo, digest))
	switch {
	case err == nil && len(v) > 0:
		if v[0] == 1 {
			return true, nil
		}
		if !repo.Cached() {
			return false, nil // deleted from this repository
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, err
	}
	if !repo.Cached() {
		return false, nil
	}
	_, err = s.get(originKey(digest, repo.Upstream))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RepoManifest returns the manifest digest as repo sees it: only when repo
// has an image record for it, and with the media type repo stored it
// under. Otherwise it is ErrNotFound, stored or not.
func (s *Store) RepoManifest(ctx context.Context, repo RepoKey, digest string) (*Manifest, error) {
	return s.repoManifest(ctx, repo, digest, true)
}

// repoManifest is RepoManifest, making the manifest hot when keep is set.
func (s *Store) repoManifest(ctx context.Context, repo RepoKey, digest string, keep bool) (*Manifest, error) {
	mt, err := s.imageType(repo, digest, keep)
	if err != nil {
		return nil, err
	}
	m, err := s.readManifest(digest, keep)
	if err != nil {
		return nil, err
	}
	if mt != "" && mt != m.MediaType {
		return &Manifest{MediaType: mt, Body: m.Body}, nil
	}
	return m, nil
}

// imageType is what a manifest GET needs of repo's image record of
// digest: its media type ("" in records of older versions), or
// ErrNotFound when there is none. It is read from the image cache, and
// from pebble into it (keep) on a miss. The access flusher's rewrites of
// records leave both alone (it rewrites only records it finds, keeping
// their type), so they need not go through the cache.
func (s *Store) imageType(repo RepoKey, digest string, keep bool) (string, error) {
	var buf [160]byte
	key := appendImageKey(buf[:0], repo, digest)
	mt, ok, gen := s.imageTypes.get(key)
	if ok {
		return mt, nil
	}
	return s.readImageType(bytes.Clone(key), repo, digest, keep, gen)
}

// readImageType is imageType's read of pebble, with a key of its own:
// one passed to pebble goes to the heap, imageType's stays on its stack.
func (s *Store) readImageType(key []byte, repo RepoKey, digest string, keep bool, gen uint64) (string, error) {
	var mt string
	err := s.view(key, func(v []byte) error {
		im, ok := decodeImage(v)
		if !ok {
			return fmt.Errorf("image %s@%s: corrupt record", repo, digest)
		}
		mt = im.MediaType
		return nil
	})
	if err != nil {
		return "", err
	}
	if keep {
		s.imageTypes.cacheRead(key, mt, gen)
	}
	return mt, nil
}

// firstType returns m with the media type of the stored record of digest,
// if there is one: rewriting a manifest never changes the type another
// repository's older image record falls back to.
func (s *Store) firstType(digest string, m *Manifest) *Manifest {
	old, err := s.manifest(digest)
	if err != nil || old.MediaType == m.MediaType {
		return m
	}
	return &Manifest{MediaType: old.MediaType, Body: m.Body}
}
