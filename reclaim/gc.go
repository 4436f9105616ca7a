package reclaim

import (
	"context"
	"maps"
	"slices"
	"time"

	"berth/store"

	"go.uber.org/zap"
)

// GCReport says what a garbage collection removed.
type GCReport struct {
	BlobsDeleted     int   `json:"blobsDeleted"`
	BytesFreed       int64 `json:"bytesFreed"`
	ManifestsDeleted int   `json:"manifestsDeleted"`
	BlobsKept        int   `json:"blobsKept"`
}

// GC is a mark-and-sweep over the whole store. It keeps what any image
// (local or cached) needs and blobs linked to cached repositories (those
// are eviction's to take); then it deletes the other manifests, and the
// other blobs older than grace (a blob uploaded but not yet referenced by
// a manifest is kept that long). Pushes wait while it runs.
//
// Pulls through the cache do not wait: they store a manifest with its
// image record in one batch, and fills commit a blob with its link. So
// the manifests are listed before the image records are walked, and only
// those are candidates: one stored after the listing is not, and one
// stored before it has its image record walked. What a write made
// referenced after the walk began (a listed manifest given an image
// record, a victim filled or linked again) stays too: each deletion is
// checked against those writes as it is made (guard.go).
func (r *Reclaimer) GC(ctx context.Context, grace time.Duration) (GCReport, error) {
	rep, err := r.gc(ctx, grace)
	release()
	return rep, err
}

func (r *Reclaimer) gc(ctx context.Context, grace time.Duration) (GCReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.store.Watch() // before the walk: see guard
	defer w.Close()
	start := r.now()
	// Only what GC needs is held: the tables, and sets over them. The
	// image records and what each manifest lists are read as they come
	// and not kept, and the link records are read twice (cached blobs,
	// then the victims' repositories) rather than held.
	g, err := r.list(ctx)
	if err != nil {
		return GCReport{}, err
	}
	liveBlobs, liveMans, err := r.markImages(ctx, g)
	if err != nil {
		return GCReport{}, err
	}
	cached, err := r.cachedBlobs(ctx, g)
	if err != nil {
		return GCReport{}, err
	}
	var rep GCReport
	cutoff := start.Add(-grace)
	victims := map[dkey]int64{} // key -> size
	err = r.store.Sweep().Blobs(ctx, func(digest string, size int64, created time.Time) error {
		k := g.ds.key(digest)
		id, ok := g.blobs.find(k)
		if ok && (liveBlobs.has(id) || cached.has(id)) || created.After(cutoff) {
			rep.BlobsKept++
			return nil
		}
		victims[k] = size
		return nil
	})
	if err != nil {
		return rep, err
	}
	links, err := r.linkRepos(ctx, g, victims)
	if err != nil {
		return rep, err
	}
	r.hasPlanned()
	if err := r.sweep(ctx, newGuard(w, g), liveMans, victims, links, &rep); err != nil {
		return rep, err
	}
	r.log.Info("garbage collection done", zap.Int("blobsDeleted", rep.BlobsDeleted), zap.Int64("bytesFreed", rep.BytesFreed),
		zap.Int("manifestsDeleted", rep.ManifestsDeleted), zap.Int("blobsKept", rep.BlobsKept), zap.Duration("took", time.Since(start)))
	return rep, nil
}

// sweep deletes the victims and the manifests listed before the walk that
// no image needs, except what a write since the walk made referenced
// (guard).
func (r *Reclaimer) sweep(ctx context.Context, gd *guard, liveMans bits, victims map[dkey]int64, links map[dkey][]store.RepoKey, rep *GCReport) error {
	g := gd.g
	for _, k := range slices.SortedFunc(maps.Keys(victims), g.ds.compare) {
		err := gd.do(ctx, func() error {
			if gd.blob(g.blobs.id(k)) {
				rep.BlobsKept++
				return nil
			}
			if err := r.store.DeleteBlob(ctx, g.ds.digest(k), links[k]); err != nil {
				return err
			}
			rep.BlobsDeleted++
			rep.BytesFreed += victims[k]
			return nil
		})
		if err != nil {
			return err
		}
	}
	// The manifests listed before the walk: the first ids.
	for id := range int32(len(g.mans.sorted)) {
		if liveMans.has(id) {
			continue
		}
		deleted, err := r.dropManifest(ctx, gd, id)
		if err != nil {
			return err
		}
		if deleted {
			rep.ManifestsDeleted++
		}
	}
	return nil
}
