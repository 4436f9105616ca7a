// Package local holds Berth's private repositories: images users push to
// the node, beside the cache, in the same content-addressed store. It
// follows ECR's model: repositories with a tag mutability setting, image
// records with pushedAt and lastPulledAt. What deletes from the store
// (garbage collection, lifecycle expiry, repository deletes) is package
// reclaim's.
package local

import (
	"context"
	"errors"
	"path"
	"sync"
	"time"

	"berth/errdefs"
	"berth/reclaim"
	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// NS is the tag namespace of local repositories in the store (cached ones
// use their upstream's name, which is never empty).
const NS = ""

// Tag mutability settings, as in ECR.
const (
	Mutable                = "MUTABLE"
	Immutable              = "IMMUTABLE"
	ImmutableWithExclusion = "IMMUTABLE_WITH_EXCLUSION"
)

// Options configure the local repositories.
type Options struct {
	// AutoCreate creates a repository on its first push.
	AutoCreate bool
	// DefaultMutability applies to auto-created repositories.
	DefaultMutability string
	Logger            *zap.Logger
	Now               func() time.Time
	// Reclaim is the store's deleter, whose lock pushes hold. Nil makes
	// one for these repositories alone (a node shares one; see reclaim).
	Reclaim *reclaim.Reclaimer
}

// Repos serves local repositories.
type Repos struct {
	store *store.Store
	opts  Options
	log   *zap.Logger

	// reclaim deletes from the store; writes that make blobs referenced
	// (manifest PUT, upload commit, mount) hold it off (Push), so it
	// never takes a blob a concurrent push is about to use.
	reclaim *reclaim.Reclaimer
	// tagMu serialises pushes that set immutable tags.
	tagMu sync.Mutex
	// uploads serialises writes to one upload session.
	uploadsMu sync.Mutex
	uploads   map[string]*sync.Mutex
}

// New returns the local repositories over store.
func New(store *store.Store, opts Options) *Repos {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DefaultMutability == "" {
		opts.DefaultMutability = Mutable
	}
	if opts.Reclaim == nil {
		opts.Reclaim = reclaim.New(store, reclaim.Options{Logger: opts.Logger, Now: opts.Now})
	}
	return &Repos{store: store, opts: opts, log: opts.Logger, reclaim: opts.Reclaim, uploads: map[string]*sync.Mutex{}}
}

// Repository returns a repository's record, or errdefs.ErrRepositoryUnknown.
func (r *Repos) Repository(ctx context.Context, name string) (*store.Repository, error) {
	rec, err := r.store.GetRepository(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errdefs.RepositoryUnknown(name)
	}
	return rec, err
}

// CreateRepository creates a repository; it is an error if it exists.
func (r *Repos) CreateRepository(ctx context.Context, name, mutability string, exclusions []string) (*store.Repository, error) {
	if !registry.ValidName(name) {
		return nil, errdefs.New(errdefs.ErrNameInvalid, "invalid repository name %s", name)
	}
	if err := ValidateMutability(mutability, exclusions); err != nil {
		return nil, err
	}
	if _, err := r.store.GetRepository(ctx, name); err == nil {
		return nil, errdefs.New(errdefs.ErrRepositoryExists, "repository %s already exists", name)
	}
	rec := &store.Repository{Name: name, CreatedAt: r.opts.Now().UTC(), Mutability: mutability, Exclusions: exclusions}
	return rec, r.store.PutRepository(ctx, rec)
}

// SetMutability changes a repository's tag mutability.
func (r *Repos) SetMutability(ctx context.Context, name, mutability string, exclusions []string) error {
	if err := ValidateMutability(mutability, exclusions); err != nil {
		return err
	}
	rec, err := r.Repository(ctx, name)
	if err != nil {
		return err
	}
	rec.Mutability, rec.Exclusions = mutability, exclusions
	return r.store.PutRepository(ctx, rec)
}

// ValidateMutability checks a mutability setting and its exclusion filters.
func ValidateMutability(m string, exclusions []string) error {
	switch m {
	case Mutable, Immutable:
		if len(exclusions) > 0 {
			return errdefs.New(errdefs.ErrInvalidParameter,
				"imageTagMutabilityExclusionFilters need %s, not %s", ImmutableWithExclusion, m)
		}
	case ImmutableWithExclusion:
		if len(exclusions) == 0 {
			return errdefs.New(errdefs.ErrInvalidParameter,
				"%s needs at least one exclusion filter", ImmutableWithExclusion)
		}
		for _, p := range exclusions {
			if _, err := path.Match(p, "x"); err != nil || p == "" {
				return errdefs.New(errdefs.ErrInvalidParameter, "invalid exclusion filter %q", p)
			}
		}
	default:
		return errdefs.New(errdefs.ErrInvalidParameter,
			"imageTagMutability %q is not %s, %s or %s", m, Mutable, Immutable, ImmutableWithExclusion)
	}
	return nil
}

// tagImmutable reports whether tag may not move in a repository.
func tagImmutable(rec *store.Repository, tag string) bool {
	switch rec.Mutability {
	case Immutable:
		return true
	case ImmutableWithExclusion:
		for _, p := range rec.Exclusions {
			if ok, _ := path.Match(p, tag); ok {
				return false
			}
		}
		return true
	}
	return false
}

// noRepository refuses a push to a repository that does not exist while
// auto-create is off.
func noRepository(name string) error {
	return errdefs.New(errdefs.ErrRepositoryUnknown,
		"repository %s does not exist and auto-create is off; create it first (berth create-repository)", name)
}

// ensureRepository returns the repository's record, creating it when
// auto-create is on.
func (r *Repos) ensureRepository(ctx context.Context, name string) (*store.Repository, error) {
	rec, err := r.store.GetRepository(ctx, name)
	if err == nil {
		return rec, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if !r.opts.AutoCreate {
		return nil, noRepository(name)
	}
	rec = &store.Repository{Name: name, CreatedAt: r.opts.Now().UTC(), Mutability: r.opts.DefaultMutability}
	if err := r.store.PutRepository(ctx, rec); err != nil {
		return nil, err
	}
	r.log.Info("created repository on first push", zap.String("repo", name))
	return rec, nil
}

// visible reports whether repo sees blob d (store.Visible): it is linked
// to repo, by an upload, a mount or a manifest. Blobs are stored once
// whichever repository brought them, but a blob stored for any other
// repository, local or cached, is answered as absent: its client uploads
// it (the bytes are kept once) or mounts it from a source it may read.
func (r *Repos) visible(ctx context.Context, repo, d string) (int64, bool, error) {
	info, err := r.store.Visible(ctx, store.LocalKey(repo), d)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return info.Size, true, nil
}

// GetBlob serves a blob of a local repository.
func (r *Repos) GetBlob(ctx context.Context, req registry.BlobRequest) (registry.Blob, error) {
	// A repository that does not exist yet is about to be created by a
	// push (auto-create): its client HEADs the layers first, and gets
	// BLOB_UNKNOWN rather than NAME_UNKNOWN, so it goes on to upload them.
	// Nothing is linked to a new repository yet, so even a layer the store
	// already holds for another one answers 404 (visible); the upload
	// links it here and the bytes are kept once.
	if _, err := r.Repository(ctx, req.Repo.Name); err != nil && !(r.opts.AutoCreate && isNameUnknown(err)) {
		return nil, err
	}
	size, ok, err := r.visible(ctx, req.Repo.Name, req.Digest.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdefs.BlobUnknown(req.Digest.String())
	}
	_ = r.store.Touch(ctx, req.Digest.String())
	return storedBlob(r.store, req.Digest.String(), size, registry.SourceLocal), nil
}

// DeleteBlob removes a blob from a repository. Its bytes stay while any
// other repository or manifest references them; garbage collection takes
// them after.
func (r *Repos) DeleteBlob(ctx context.Context, repo registry.Repo, d registry.Digest) error {
	_, ok, err := r.visible(ctx, repo.Name, d.String())
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.BlobUnknown(d.String())
	}
	b := r.store.NewBatch()
	if err := b.Unlink(store.LocalKey(repo.Name), d.String()); err != nil {
		b.Close()
		return err
	}
	return b.Commit()
}

// MountBlob links a stored blob into repo from the repository from (local
// or cached), which must see it (store.Visible). The caller has checked
// that the client may read from.
func (r *Repos) MountBlob(ctx context.Context, repo string, d registry.Digest, from store.RepoKey) error {
	defer r.reclaim.Push()()
	if _, err := r.store.Visible(ctx, from, d.String()); errors.Is(err, store.ErrNotFound) {
		return errdefs.BlobUnknown(d.String())
	} else if err != nil {
		return err
	}
	if _, err := r.ensureRepository(ctx, repo); err != nil {
		return err
	}
	if err := r.store.RefreshBlob(ctx, d.String()); err != nil {
		return err
	}
	b := r.store.NewBatch()
	if err := b.Link(store.LocalKey(repo), d.String()); err != nil {
		b.Close()
		return err
	}
	return b.Commit()
}

// ListTags lists a local repository's tags.
func (r *Repos) ListTags(ctx context.Context, repo registry.Repo) ([]string, error) {
	if _, err := r.Repository(ctx, repo.Name); err != nil {
		return nil, err
	}
	return r.store.ListTags(ctx, NS, repo.Name)
}

// ListTagsPage lists up to n of a local repository's tags after last.
func (r *Repos) ListTagsPage(ctx context.Context, repo registry.Repo, last string, n int) ([]string, bool, error) {
	if _, err := r.Repository(ctx, repo.Name); err != nil {
		return nil, false, err
	}
	return r.store.TagsPage(ctx, NS, repo.Name, last, n)
}

// storedBlob serves a committed blob from its file.
func storedBlob(st *store.Store, digest string, size int64, from registry.Source) registry.Blob {
	return &registry.SourcedBlob{BlobBody: &store.BlobFile{Store: st, Digest: digest, Len: size}, From: from, Digest: digest}
}

func isNameUnknown(err error) bool {
	return errors.Is(err, errdefs.ErrRepositoryUnknown)
}
