package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Sweep is the store's view for garbage collection: every key of a kind.
type Sweep struct{ s *Store }

// Sweep returns the iteration helpers garbage collection uses.
func (s *Store) Sweep() Sweep { return Sweep{s} }

// Images calls fn for every image record (repo, digest).
func (w Sweep) Images(ctx context.Context, fn func(repo RepoKey, digest string) error) error {
	var keys repoKeys
	return w.s.scan(ctx, prefixImage, func(k, _ []byte) error {
		repo, digest, err := keys.split(k)
		if err != nil {
			return fmt.Errorf("image record: %w", err)
		}
		return fn(repo, digest)
	})
}

// Links calls fn for every blob link.
func (w Sweep) Links(ctx context.Context, fn func(repo RepoKey, digest string, linked bool) error) error {
	var keys repoKeys
	return w.s.scan(ctx, prefixLink, func(k, v []byte) error {
		repo, digest, err := keys.split(k)
		if err != nil {
			return fmt.Errorf("blob link: %w", err)
		}
		return fn(repo, digest, len(v) > 0 && v[0] == 1)
	})
}

// repoKeys splits the keys of a scan, which come grouped by repository:
// consecutive keys of one repository share one RepoKey (its strings
// allocated once), so a pass over a large store holds one per repository,
// not one per record.
type repoKeys struct {
	enc  []byte
	last RepoKey
}

func (r *repoKeys) split(k []byte) (RepoKey, string, error) {
	enc, digest, ok := bytes.Cut(k, []byte{0})
	if ok && r.enc != nil && bytes.Equal(enc, r.enc) {
		return r.last, string(digest), nil
	}
	repo, d, err := splitRepoKey(k)
	if err == nil {
		r.enc, r.last = append(r.enc[:0], enc...), repo
	}
	return repo, d, err
}

// splitRepoKey reads the <repo>\x00<digest> of an image or link key.
func splitRepoKey(k []byte) (RepoKey, string, error) {
	repo, digest, ok := bytes.Cut(k, []byte{0})
	if !ok {
		return RepoKey{}, "", fmt.Errorf("key %q has no digest", k)
	}
	rk, err := ParseRepoKey(string(repo))
	return rk, string(digest), err
}

// Blobs calls fn for every committed blob with its size and creation time.
func (w Sweep) Blobs(ctx context.Context, fn func(digest string, size int64, created time.Time) error) error {
	return w.s.scan(ctx, prefixBlob, func(k, v []byte) error {
		info, created, ok := decodeBlob(v)
		if !ok {
			return nil
		}
		return fn(string(k), info.Size, created)
	})
}

// Manifest is GetManifest for a pass over the store: a manifest not in
// memory is read without being kept there, so a pass that reads every
// manifest once leaves the hot ones hot.
func (w Sweep) Manifest(ctx context.Context, digest string) (*Manifest, error) {
	return w.s.readManifest(digest, false)
}

// RepoManifest is Store.RepoManifest for a pass, as Manifest.
func (w Sweep) RepoManifest(ctx context.Context, repo RepoKey, digest string) (*Manifest, error) {
	return w.s.repoManifest(ctx, repo, digest, false)
}

// Tags calls fn for every tag of repo in namespace ns, in order, with its
// record: one pass over the repository's keys, and no tag kept in memory.
func (w Sweep) Tags(ctx context.Context, ns, repo string, fn func(tag string, t Tag) error) error {
	return w.s.scan(ctx, tagPrefix(ns, repo), func(k, v []byte) error {
		if len(v) < 8 {
			return fmt.Errorf("tag %s:%s: corrupt record", repo, k)
		}
		return fn(string(k), decodeTag(v))
	})
}

// Manifests calls fn for every stored manifest digest.
func (w Sweep) Manifests(ctx context.Context, fn func(digest string) error) error {
	return w.s.scan(ctx, prefixManifest, func(k, _ []byte) error { return fn(string(k)) })
}

// DeleteManifest removes a manifest body no image references.
func (w Sweep) DeleteManifest(ctx context.Context, digest string) error {
	w.s.dropHot(digest)
	err := w.s.db.Delete(manifestKey(digest), pebble.Sync)
	w.s.dropHot(digest) // a read before the delete may have made it hot since
	return err
}
