package reclaim

import (
	"context"
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

// Pinned reports whether a cached image must never be evicted: upstream
// is the rule's name, repo the repository's name at the upstream, digest
// the image's.
type Pinned func(upstream, repo, digest string) bool

// candidate is a cached image, or a cached blob no image references.
type candidate struct {
	image    image // zero for a lone blob
	blob     string
	lastUsed time.Time
}

// Evict removes cached (pulled-through) content, least recently pulled
// first (an image's last pull is its family's, see use.go), until the store's blob bytes are at most target. It evicts by
// image: an image's record and tags go, then the blobs and manifests no
// remaining image needs. Blobs of local repositories and what pinned
// images need are never touched, and neither are fills in progress (they
// are not in the store until they verify). A blob being read when it is
// evicted is unlinked, not truncated: the reader finishes.
func (r *Reclaimer) Evict(ctx context.Context, target int64, pinned Pinned) (EvictReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep EvictReport
	if used := r.store.Stats().BlobBytes; used <= target {
		rep.Remaining = used
		return rep, nil
	}
	g, err := r.walk(ctx)
	if err != nil {
		return rep, err
	}
	l, err := r.links(ctx)
	if err != nil {
		return rep, err
	}
	p := r.planEviction(ctx, g, l, pinned)
	for _, c := range p.cands {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if r.store.Stats().BlobBytes <= target {
			break
		}
		if c.blob != "" {
			if err := r.dropCachedBlob(ctx, c.blob, l, &rep.BlobsEvicted, &rep.BytesFreed); err != nil {
				return rep, err
			}
			continue
		}
		if err := r.dropImage(ctx, c.image); err != nil {
			return rep, err
		}
		rep.ImagesEvicted++
		for _, b := range p.closures[c.image].blobs {
			if p.blobRefs[b]--; p.blobRefs[b] == 0 {
				if err := r.dropCachedBlob(ctx, b, l, &rep.BlobsEvicted, &rep.BytesFreed); err != nil {
					return rep, err
				}
			}
		}
		for _, m := range p.closures[c.image].mans {
			if p.manRefs[m]--; p.manRefs[m] == 0 {
				if err := r.store.Sweep().DeleteManifest(ctx, m); err != nil {
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

// evictionPlan is what eviction works through: the cached images and
// lone cached blobs, least recently used first, and how many images need
// each blob and manifest.
type evictionPlan struct {
	cands    []candidate
	blobRefs map[string]int // blob -> images needing it
	manRefs  map[string]int // manifest -> images needing it
	closures map[image]need
}

// need is what one image needs: blobs, and manifests (its own included).
type need struct{ blobs, mans []string }

func (r *Reclaimer) planEviction(ctx context.Context, g *graph, l links, pinned Pinned) evictionPlan {
	p := evictionPlan{blobRefs: map[string]int{}, manRefs: map[string]int{},
		closures: map[image]need{}}
	// The cached images that may go, with their families' last use.
	used, holders, kept := map[image]time.Time{}, map[image][]image{}, map[image]bool{}
	for _, im := range g.images {
		blobs, mans := g.closure(ctx, im.digest)
		p.closures[im] = need{blobs, mans}
		for _, b := range blobs {
			p.blobRefs[b]++
		}
		for _, m := range mans {
			p.manRefs[m]++
		}
		if !im.repo.Cached() {
			continue
		}
		if pinned != nil && pinned(im.repo.Upstream, im.repo.Name, im.digest) {
			for _, b := range blobs {
				p.blobRefs[b] += 1 << 30 // never reaches zero
			}
			for _, m := range mans { // a pinned index keeps its platforms' records
				kept[image{im.repo, m}] = true
			}
			continue
		}
		rec, _ := r.store.GetImage(ctx, im.repo, im.digest)
		used[im] = rec.LastPulledAt
		if used[im].IsZero() {
			used[im] = rec.PushedAt
		}
		for _, m := range mans[1:] { // the manifests an index lists
			holders[image{im.repo, m}] = append(holders[image{im.repo, m}], im)
		}
	}
	shareUse(used, holders) // see use.go
	for im, at := range used {
		if !kept[im] {
			p.cands = append(p.cands, candidate{image: im, lastUsed: at})
		}
	}
	// Cached blobs that no image needs (pulled by digest alone).
	for d := range l.cached {
		if p.blobRefs[d] == 0 && !l.local[d] {
			at, _ := r.store.LastAccess(ctx, d)
			p.cands = append(p.cands, candidate{blob: d, lastUsed: at})
		}
	}
	sort.Slice(p.cands, func(i, j int) bool {
		a, b := p.cands[i], p.cands[j]
		if !a.lastUsed.Equal(b.lastUsed) {
			return a.lastUsed.Before(b.lastUsed)
		}
		return a.image.digest+a.blob < b.image.digest+b.blob // a stable order for one family
	})
	return p
}

// dropCachedBlob deletes a blob no image needs any more, with its links
// and origin records, unless a local repository links it; it counts what it freed.
func (r *Reclaimer) dropCachedBlob(ctx context.Context, d string, l links, blobs *int, bytes *int64) error {
	if l.local[d] {
		return nil
	}
	info, err := r.store.StatBlob(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Its links (cached ones, and local ones it was deleted from) and its
	// origin records go in the same write.
	if err := r.store.DeleteBlob(ctx, d, l.all[d]); err != nil {
		return err
	}
	*blobs++
	*bytes += info.Size
	return nil
}
