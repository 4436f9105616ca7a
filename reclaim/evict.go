package reclaim

import (
	"context"
	"errors"
	"slices"
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
	image    image
	blob     int32 // -1 for an image
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
	err := r.evict(ctx, target, pinned, &rep)
	release()
	return rep, err
}

func (r *Reclaimer) evict(ctx context.Context, target int64, pinned Pinned, rep *EvictReport) error {
	w := r.store.Watch() // before the walk: see guard
	defer w.Close()
	g, err := r.walk(ctx)
	if err != nil {
		return err
	}
	l, err := r.links(ctx, g)
	if err != nil {
		return err
	}
	p := r.planEviction(ctx, g, l, pinned)
	r.hasPlanned()
	gd := newGuard(w, g)
	for _, c := range p.cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.store.Stats().BlobBytes <= target {
			break
		}
		if c.blob >= 0 {
			if err := r.dropCachedBlob(ctx, gd, l, c.blob, &rep.BlobsEvicted, &rep.BytesFreed); err != nil {
				return err
			}
			continue
		}
		if err := r.evictImage(ctx, gd, l, &p, c, rep); err != nil {
			return err
		}
	}
	rep.Remaining = r.store.Stats().BlobBytes
	r.log.Info("evicted cached content", zap.Int("images", rep.ImagesEvicted), zap.Int("blobs", rep.BlobsEvicted),
		zap.Int64("bytesFreed", rep.BytesFreed), zap.Int64("remaining", rep.Remaining), zap.Int64("target", target))
	return nil
}

// evictImage drops the image of candidate c, then the blobs and manifests
// no other image of the plan needs. An image a pull stored again since the
// walk stays, and so does what it needs; so does one pulled since the
// plan, which is no longer the least recently used.
func (r *Reclaimer) evictImage(ctx context.Context, gd *guard, l *links, p *evictionPlan, c candidate, rep *EvictReport) error {
	g, im := gd.g, c.image
	repo, digest := g.repos[im.repo], g.manDigest(im.man)
	var kept bool
	err := gd.do(ctx, func() error {
		if kept = gd.image(repo, digest) || r.pulledSince(ctx, repo, digest, c.lastUsed); kept {
			return nil
		}
		return r.dropImage(ctx, repo, digest)
	})
	if err != nil || kept {
		return err
	}
	rep.ImagesEvicted++
	// What the plan counted: the graph keeps every manifest's edges as
	// read then.
	blobs, mans := g.closure(ctx, im.man)
	for _, b := range blobs {
		if p.blobRefs[b]--; p.blobRefs[b] == 0 && !p.pinned.has(b) {
			if err := r.dropCachedBlob(ctx, gd, l, b, &rep.BlobsEvicted, &rep.BytesFreed); err != nil {
				return err
			}
		}
	}
	for _, m := range mans {
		if p.manRefs[m]--; p.manRefs[m] == 0 {
			if _, err := r.dropManifest(ctx, gd, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// pulledSince reports whether the image of digest in repo was pulled
// after planned, its family's last use when the plan was made: the plan
// read every last pull, so one later than its family's is a pull since.
func (r *Reclaimer) pulledSince(ctx context.Context, repo store.RepoKey, digest string, planned time.Time) bool {
	rec, err := r.store.GetImage(ctx, repo, digest)
	return err == nil && rec.LastPulledAt.After(planned)
}

// evictionPlan is what eviction works through: the cached images and
// lone cached blobs, least recently used first, and how many images need
// each blob and manifest (by id of the graph).
type evictionPlan struct {
	cands    []candidate
	blobRefs []int32 // blob -> images needing it
	manRefs  []int32 // manifest -> images needing it
	// pinned are the blobs pinned images need: never dropped.
	pinned bits
}

func (r *Reclaimer) planEviction(ctx context.Context, g *graph, l *links, pinned Pinned) evictionPlan {
	p := evictionPlan{blobRefs: make([]int32, g.blobs.len()), manRefs: make([]int32, g.mans.len())}
	// The cached images that may go, with their families' last use.
	used, holders, kept := map[image]time.Time{}, map[image][]image{}, map[image]bool{}
	for _, im := range g.images {
		blobs, mans := g.closure(ctx, im.man)
		for _, b := range blobs {
			*at(&p.blobRefs, b)++
		}
		for _, m := range mans {
			*at(&p.manRefs, m)++
		}
		repo := g.repos[im.repo]
		if !repo.Cached() {
			continue
		}
		digest := g.manDigest(im.man)
		if pinned != nil && pinned(repo.Upstream, repo.Name, digest) {
			for _, b := range blobs {
				p.pinned.set(b)
			}
			for _, m := range mans { // a pinned index keeps its platforms' records
				kept[image{im.repo, m}] = true
			}
			continue
		}
		rec, _ := r.store.GetImage(ctx, repo, digest)
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
			p.cands = append(p.cands, candidate{image: im, blob: -1, lastUsed: at})
		}
	}
	// Cached blobs that no image needs (pulled by digest alone).
	for id := range int32(g.blobs.len()) {
		if l.cached.has(id) && *at(&p.blobRefs, id) == 0 && !l.local.has(id) {
			t, _ := r.store.LastAccess(ctx, g.blobDigest(id))
			p.cands = append(p.cands, candidate{blob: id, lastUsed: t})
		}
	}
	key := func(c candidate) dkey {
		if c.blob >= 0 {
			return g.blobs.key(c.blob)
		}
		return g.mans.key(c.image.man)
	}
	slices.SortFunc(p.cands, func(a, b candidate) int {
		if c := a.lastUsed.Compare(b.lastUsed); c != 0 {
			return c
		}
		return g.ds.compare(key(a), key(b)) // a stable order for one family
	})
	return p
}

// at returns the counter of id in s, growing s to hold it.
func at(s *[]int32, id int32) *int32 {
	if int(id) >= len(*s) {
		*s = append(*s, make([]int32, int(id)+1-len(*s))...)
	}
	return &(*s)[id]
}

// dropCachedBlob deletes blob id, which no image needs any more, with
// its links and origin records, unless a local repository links it or a
// write since the walk made it referenced (guard); it counts what it
// freed.
func (r *Reclaimer) dropCachedBlob(ctx context.Context, gd *guard, l *links, id int32, blobs *int, bytes *int64) error {
	if l.local.has(id) {
		return nil
	}
	return gd.do(ctx, func() error {
		if gd.blob(id) {
			return nil
		}
		d := gd.g.blobDigest(id)
		info, err := r.store.StatBlob(ctx, d)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		// Its links (cached ones, and local ones it was deleted from) and
		// its origin records go in the same write.
		if err := r.store.DeleteBlob(ctx, d, l.all(id)); err != nil {
			return err
		}
		*blobs++
		*bytes += info.Size
		return nil
	})
}

// dropManifest deletes manifest id, which no image needs any more, unless
// a write since the walk made it referenced (guard). It reports whether
// it deleted it.
func (r *Reclaimer) dropManifest(ctx context.Context, gd *guard, id int32) (deleted bool, err error) {
	err = gd.do(ctx, func() error {
		if gd.manifest(id) {
			return nil
		}
		deleted = true
		return r.store.Sweep().DeleteManifest(ctx, gd.g.manDigest(id))
	})
	return deleted, err
}
