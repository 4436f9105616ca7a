package reclaim

import (
	"context"
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
// image record in one batch. So the manifests are listed before the image
// records are walked, and only those are candidates: one stored after the
// listing is not, and one stored before it has its image record walked.
func (r *Reclaimer) GC(ctx context.Context, grace time.Duration) (GCReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.now()
	g, err := r.walk(ctx)
	if err != nil {
		return GCReport{}, err
	}
	liveBlobs, liveMans := g.needed(ctx, g.images)
	l, err := r.links(ctx, g)
	if err != nil {
		return GCReport{}, err
	}
	var rep GCReport
	cutoff := start.Add(-grace)
	type victim struct {
		key  dkey
		size int64
	}
	var victims []victim
	err = r.store.Sweep().Blobs(ctx, func(digest string, size int64, created time.Time) error {
		k := g.ds.key(digest)
		id, ok := g.blobs.find(k)
		if ok && (liveBlobs.has(id) || l.cached.has(id)) || created.After(cutoff) {
			rep.BlobsKept++
			return nil
		}
		victims = append(victims, victim{k, size})
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, v := range victims {
		var repos []store.RepoKey
		if id, ok := g.blobs.find(v.key); ok {
			repos = l.all(id)
		}
		if err := r.store.DeleteBlob(ctx, g.ds.digest(v.key), repos); err != nil {
			return rep, err
		}
		rep.BlobsDeleted++
		rep.BytesFreed += v.size
	}
	// The manifests listed before the walk: the first ids.
	for id := range int32(len(g.mans.sorted)) {
		if liveMans.has(id) {
			continue
		}
		if err := r.store.Sweep().DeleteManifest(ctx, g.manDigest(id)); err != nil {
			return rep, err
		}
		rep.ManifestsDeleted++
	}
	r.log.Info("garbage collection done", zap.Int("blobsDeleted", rep.BlobsDeleted), zap.Int64("bytesFreed", rep.BytesFreed),
		zap.Int("manifestsDeleted", rep.ManifestsDeleted), zap.Int("blobsKept", rep.BlobsKept), zap.Duration("took", time.Since(start)))
	return rep, nil
}
