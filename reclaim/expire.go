package reclaim

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"berth/errdefs"
	"berth/store"

	"go.uber.org/zap"
)

// ImageRef is one image of a repository.
type ImageRef struct {
	Repo   ImageRepo
	Digest string
}

// ExpireReport says what ExpireImages removed.
type ExpireReport struct {
	// ImagesExpired counts the images deleted, local and cached.
	ImagesExpired int `json:"imagesExpired"`
	// LocalImagesExpired counts the local ones among them: their blobs
	// are garbage collection's to reclaim.
	LocalImagesExpired int `json:"localImagesExpired"`
	// Cached content no remaining image needs is reclaimed at once.
	BlobsDeleted     int   `json:"blobsDeleted"`
	BytesFreed       int64 `json:"bytesFreed"`
	ManifestsDeleted int   `json:"manifestsDeleted"`
}

// ExpireImages deletes images: the image record, every tag pointing at it
// and its referrer entry, as a DELETE of a manifest by digest does. A
// local image's blobs are then garbage collection's to reclaim; since
// garbage collection never takes cached blobs, the blobs and manifests
// expired cached images alone needed are deleted here, as eviction does.
// Images already gone are skipped. Pushes wait meanwhile.
func (r *Reclaimer) ExpireImages(ctx context.Context, refs []ImageRef) (ExpireReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep ExpireReport
	var cached []string
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if _, err := r.store.GetImage(ctx, ref.Repo.Key, ref.Digest); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return rep, err
		}
		if err := r.dropImage(ctx, ref.Repo.Key, ref.Digest); err != nil {
			return rep, err
		}
		rep.ImagesExpired++
		if ref.Repo.Cached() {
			cached = append(cached, ref.Digest)
		} else {
			rep.LocalImagesExpired++
		}
	}
	if len(cached) > 0 {
		err := r.reclaimCached(ctx, cached, &rep)
		release()
		if err != nil {
			return rep, err
		}
	}
	if rep.ImagesExpired > 0 {
		r.log.Info("images expired", zap.Int("images", rep.ImagesExpired), zap.Int("local", rep.LocalImagesExpired),
			zap.Int("blobsDeleted", rep.BlobsDeleted), zap.Int64("bytesFreed", rep.BytesFreed))
	}
	return rep, nil
}

// reclaimCached deletes the blobs and manifests of the given (dropped)
// cached images that no remaining image needs and no local repository
// links.
func (r *Reclaimer) reclaimCached(ctx context.Context, digests []string, rep *ExpireReport) error {
	w := r.store.Watch() // before the walk: see guard
	defer w.Close()
	g, err := r.walk(ctx)
	if err != nil {
		return err
	}
	var candBlobs, candMans bits
	for _, d := range digests {
		blobs, mans := g.closure(ctx, g.manID(d))
		for _, b := range blobs {
			candBlobs.set(b)
		}
		for _, m := range mans {
			candMans.set(m)
		}
	}
	needBlobs, needMans := g.needed(ctx, g.images)
	l, err := r.links(ctx, g)
	if err != nil {
		return err
	}
	r.hasPlanned()
	gd := newGuard(w, g)
	for _, b := range g.sorted(candBlobs, &g.blobs) {
		// A blob no cached repository links is not cached content.
		if needBlobs.has(b) || !l.cached.has(b) {
			continue
		}
		if err := r.dropCachedBlob(ctx, gd, l, b, &rep.BlobsDeleted, &rep.BytesFreed); err != nil {
			return err
		}
	}
	for _, m := range g.sorted(candMans, &g.mans) {
		if needMans.has(m) {
			continue
		}
		deleted, err := r.dropManifest(ctx, gd, m)
		if err != nil {
			return err
		}
		if deleted {
			rep.ManifestsDeleted++
		}
	}
	return nil
}

// sorted returns the ids in set, of table t, in their digests' order.
func (g *graph) sorted(set bits, t *table) []int32 {
	var out []int32
	for w, word := range set {
		for i := range 64 {
			if word&(1<<i) != 0 {
				out = append(out, int32(w*64+i))
			}
		}
	}
	slices.SortFunc(out, func(a, b int32) int { return g.ds.compare(t.key(a), t.key(b)) })
	return out
}

// DeleteImage deletes an image of a repository (a DELETE of its manifest
// by digest): its record, every tag pointing at it and its referrer entry.
// The manifest and blobs stay for garbage collection or eviction. It is
// store.ErrNotFound when the repository has no such image.
func (r *Reclaimer) DeleteImage(ctx context.Context, repo store.RepoKey, digest string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.store.GetImage(ctx, repo, digest); err != nil {
		return err
	}
	return r.dropImage(ctx, repo, digest)
}

// dropImage removes an image's record, the tags of its repository that
// point at it, and its referrer entry, in one batch.
func (r *Reclaimer) dropImage(ctx context.Context, repo store.RepoKey, digest string) error {
	ns, name := repo.Upstream, repo.Name
	tags, err := r.store.ListTags(ctx, ns, name)
	if err != nil {
		return err
	}
	b := r.store.NewBatch()
	defer b.Close()
	if err := b.DeleteImage(repo, digest); err != nil {
		return err
	}
	for _, tag := range tags {
		if t, err := r.store.GetTag(ctx, ns, name, tag); err == nil && t.Digest == digest {
			if err := b.DeleteTag(ns, name, tag); err != nil {
				return err
			}
		}
	}
	if m, err := r.store.GetManifest(ctx, digest); err == nil {
		if doc, ok := readManifest(m.Body); ok && doc.Subject != nil {
			if err := b.DeleteReferrer(repo, doc.Subject.Digest, digest); err != nil {
				return err
			}
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("delete image %s@%s: %w", repo, digest, err)
	}
	return nil
}

// ErrRepositoryNotEmpty is wrapped by DeleteRepository's refusal to delete
// a repository that still holds images.
var ErrRepositoryNotEmpty = errors.New("repository is not empty")

// DeleteRepository deletes a local repository. One that still holds images
// is refused (ErrRepositoryNotEmpty) unless force is set, in which case its
// images, tags, blob links and referrer entries go with it; garbage
// collection reclaims the blobs and manifests no other repository uses.
// Pushes wait while it runs. It returns the deleted record.
func (r *Reclaimer) DeleteRepository(ctx context.Context, name string, force bool) (*store.Repository, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.store.GetRepository(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errdefs.RepositoryUnknown(name)
	}
	if err != nil {
		return nil, err
	}
	images, err := r.store.ListImages(ctx, store.LocalKey(name))
	if err != nil {
		return nil, err
	}
	if len(images) > 0 && !force {
		return nil, fmt.Errorf("%w: repository %s holds %d images; delete them first, or force the deletion", ErrRepositoryNotEmpty, name, len(images))
	}
	if err := r.store.PurgeRepository(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errdefs.RepositoryUnknown(name)
		}
		return nil, err
	}
	r.log.Info("repository deleted", zap.String("repo", name), zap.Int("images", len(images)))
	return rec, nil
}
