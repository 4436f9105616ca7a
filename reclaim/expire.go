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
		im := image{ref.Repo.Key, ref.Digest}
		if _, err := r.store.GetImage(ctx, im.repo, im.digest); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return rep, err
		}
		if err := r.dropImage(ctx, im); err != nil {
			return rep, err
		}
		rep.ImagesExpired++
		if im.repo.Cached() {
			cached = append(cached, im.digest)
		} else {
			rep.LocalImagesExpired++
		}
	}
	if len(cached) > 0 {
		if err := r.reclaimCached(ctx, cached, &rep); err != nil {
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
	g, err := r.walk(ctx)
	if err != nil {
		return err
	}
	candBlobs, candMans := map[string]bool{}, map[string]bool{}
	for _, d := range digests {
		blobs, mans := g.closure(ctx, d)
		for _, b := range blobs {
			candBlobs[b] = true
		}
		for _, m := range mans {
			candMans[m] = true
		}
	}
	needBlobs, needMans := g.needed(ctx, g.images)
	l, err := r.links(ctx)
	if err != nil {
		return err
	}
	for _, b := range sortedKeys(candBlobs) {
		// A blob no cached repository links is not cached content.
		if needBlobs[b] || len(l.cached[b]) == 0 {
			continue
		}
		if err := r.dropCachedBlob(ctx, b, l, &rep.BlobsDeleted, &rep.BytesFreed); err != nil {
			return err
		}
	}
	for _, m := range sortedKeys(candMans) {
		if needMans[m] {
			continue
		}
		if err := r.store.Sweep().DeleteManifest(ctx, m); err != nil {
			return err
		}
		rep.ManifestsDeleted++
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
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
	return r.dropImage(ctx, image{repo, digest})
}

// dropImage removes an image's record, the tags of its repository that
// point at it, and its referrer entry, in one batch.
func (r *Reclaimer) dropImage(ctx context.Context, im image) error {
	ns, name := im.repo.Upstream, im.repo.Name
	tags, err := r.store.ListTags(ctx, ns, name)
	if err != nil {
		return err
	}
	b := r.store.NewBatch()
	defer b.Close()
	if err := b.DeleteImage(im.repo, im.digest); err != nil {
		return err
	}
	for _, tag := range tags {
		if t, err := r.store.GetTag(ctx, ns, name, tag); err == nil && t.Digest == im.digest {
			if err := b.DeleteTag(ns, name, tag); err != nil {
				return err
			}
		}
	}
	if m, err := r.store.GetManifest(ctx, im.digest); err == nil {
		if doc, ok := readManifest(m.Body); ok && doc.Subject != nil {
			if err := b.DeleteReferrer(im.repo, doc.Subject.Digest, im.digest); err != nil {
				return err
			}
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("delete image %s@%s: %w", im.repo, im.digest, err)
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
