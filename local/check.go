package local

import (
	"context"
	"errors"

	"berth/errdefs"
	"berth/store"
)

// CheckPut is a dry run of the preconditions a manifest PUT of digest
// under tag (none when empty) to repo checks on the repository and the
// tag: the repository exists or may be created on push, and an immutable
// tag does not point at another digest. It writes nothing, so an importer
// can check every image before it puts the first one. The PUT checks
// again: a push in between can still make it fail.
func (r *Repos) CheckPut(ctx context.Context, repo, tag, digest string) error {
	rec, err := r.store.GetRepository(ctx, repo)
	switch {
	case errors.Is(err, store.ErrNotFound) && r.opts.AutoCreate:
		return nil // a new repository has no tags yet
	case errors.Is(err, store.ErrNotFound):
		return noRepository(repo)
	case err != nil:
		return err
	}
	if tag == "" {
		return nil
	}
	return r.checkImmutable(ctx, rec, []string{tag}, digest)
}

// checkImmutable refuses to move an immutable tag of rec to digest.
func (r *Repos) checkImmutable(ctx context.Context, rec *store.Repository, tags []string, digest string) error {
	for _, tag := range tags {
		if !tagImmutable(rec, tag) {
			continue
		}
		old, err := r.store.GetTag(ctx, NS, rec.Name, tag)
		if err == nil && old.Digest != digest {
			return errdefs.New(errdefs.ErrTagImmutable,
				"tag %s of %s is immutable and points at %s; push under a new tag", tag, rec.Name, old.Digest)
		}
	}
	return nil
}
