package local

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"berth/store"

	"go.uber.org/zap"
)

// EvictReport says what an eviction removed.
type EvictReport struct {
	ImagesEvicted int   `json:"imagesEvicted"`
	BlobsEvicted  int   `json:"blobsEvicted"`
	BytesFreed    int64 `json:"bytesFreed"`
	// Remaining is the store's blob bytes afterwards.
	Remaining int64 `json:"remaining"`
}

// Pinned reports whether a cached image must never be evicted: repo is
// the repository's name at upstream, digest the image's.
type Pinned func(upstream, repo, digest string) bool

// candidate is a cached image, or a cached blob no image references.
type candidate struct {
	repo     store.RepoKey // image; zero for a lone blob
	digest   string
	blob     string
	lastUsed time.Time
}

// Evict removes cached (pulled-through) content, least recently pulled
// first, until the store's blob bytes are at most target. It evicts by
// image: an image's record and tags go, then the blobs and manifests no
// remaining image references. Blobs of local repositories and pinned
// images are never touched, and neither are fills in progress (they are
// not in the store until they verify). A blob being read when it is
// evicted is unlinked, not truncated: the reader finishes.
func (r *Repos) Evict(ctx context.Context, target int64, pinned Pinned) (EvictReport, error) {
	r.gc.Lock()
	defer r.gc.Unlock()
	var rep EvictReport
	if r.store.Stats().BlobBytes <= target {
		rep.Remaining = r.store.Stats().BlobBytes
		return rep, nil
	}
	sw := r.store.Sweep()
	blobRefs := map[string]int{}         // blob -> images referencing it
	manRefs := map[string]int{}          // manifest -> images referencing it (itself or as a child)
	imageBlobs := map[imageID][]string{} // image -> blobs
	imageMans := map[imageID][]string{}  // image -> manifests
	var cands []candidate
	err := sw.Images(ctx, func(repo store.RepoKey, digest string) error {
		blobs, mans := r.closure(ctx, digest)
		key := imageID{repo, digest}
		imageBlobs[key], imageMans[key] = blobs, mans
		for _, b := range blobs {
			blobRefs[b]++
		}
		for _, m := range mans {
			manRefs[m]++
		}
		if repo.Cached() {
			if pinned != nil && pinned(repo.Upstream, repo.Name, digest) {
				for _, b := range blobs {
					blobRefs[b] += 1 << 30 // never reaches zero
				}
				return nil
			}
			im, _ := r.store.GetImage(ctx, repo, digest)
			used := im.LastPulledAt
			if used.IsZero() {
				used = im.PushedAt
			}
			cands = append(cands, candidate{repo: repo, digest: digest, lastUsed: used})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	localBlobs := map[string]bool{}
	cachedLinks := map[string][]store.RepoKey{}
	err = sw.Links(ctx, func(repo store.RepoKey, digest string, linked bool) error {
		if repo.Cached() {
			cachedLinks[digest] = append(cachedLinks[digest], repo)
		} else if linked {
			localBlobs[digest] = true
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	// Cached blobs that no image references (pulled by digest alone).
	for d := range cachedLinks {
		if blobRefs[d] == 0 && !localBlobs[d] {
			at, _ := r.store.LastAccess(ctx, d)
			cands = append(cands, candidate{blob: d, lastUsed: at})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].lastUsed.Before(cands[j].lastUsed) })

	dropBlob := func(d string) error {
		if localBlobs[d] {
			return nil
		}
		info, err := r.store.StatBlob(ctx, d)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := r.store.DeleteBlob(ctx, d); err != nil {
			return err
		}
		if err := sw.DeleteLinks(ctx, d, cachedLinks[d]); err != nil {
			return err
		}
		rep.BlobsEvicted++
		rep.BytesFreed += info.Size
		return nil
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if r.store.Stats().BlobBytes <= target {
			break
		}
		if c.blob != "" {
			if err := dropBlob(c.blob); err != nil {
				return rep, err
			}
			continue
		}
		if err := r.dropCachedImage(ctx, c.repo, c.digest); err != nil {
			return rep, err
		}
		rep.ImagesEvicted++
		key := imageID{c.repo, c.digest}
		for _, b := range imageBlobs[key] {
			if blobRefs[b]--; blobRefs[b] == 0 {
				if err := dropBlob(b); err != nil {
					return rep, err
				}
			}
		}
		for _, m := range imageMans[key] {
			if manRefs[m]--; manRefs[m] == 0 {
				if err := sw.DeleteManifest(ctx, m); err != nil {
					return rep, err
				}
			}
		}
	}
	rep.Remaining = r.store.Stats().BlobBytes
	r.log.Info("evicted cached content", zap.Int("images", rep.ImagesEvicted), zap.Int("blobs", rep.BlobsEvicted),
		zap.Int64("bytesFreed", rep.BytesFreed), zap.Int64("remaining", rep.Remaining), zap.Int64("target", target))
	return rep, nil
}

// imageID is an image: a manifest of a repository.
type imageID struct {
	repo   store.RepoKey
	digest string
}

// closure returns the blobs and manifests an image needs: its config and
// layers, and for an index its children's, recursively.
func (r *Repos) closure(ctx context.Context, digest string) (blobs, mans []string) {
	seen := map[string]bool{}
	queue := []string{digest}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		mans = append(mans, d)
		m, err := r.store.GetManifest(ctx, d)
		if err != nil {
			continue
		}
		var doc manifestDoc
		if json.Unmarshal(m.Body, &doc) != nil {
			continue
		}
		for _, ref := range doc.refs() {
			if isManifestType(ref.MediaType) {
				queue = append(queue, ref.Digest)
			} else {
				blobs = append(blobs, ref.Digest)
			}
		}
	}
	return blobs, mans
}

// dropCachedImage removes a cached image's record and the cached tags that
// point at it.
func (r *Repos) dropCachedImage(ctx context.Context, repo store.RepoKey, digest string) error {
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
	return b.Commit()
}
