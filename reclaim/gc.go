package reclaim

import (
	"context"
	"time"

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
	sw := r.store.Sweep()
	var manifests []string
	if err := sw.Manifests(ctx, func(digest string) error {
		manifests = append(manifests, digest)
		return nil
	}); err != nil {
		return GCReport{}, err
	}
	g, err := r.walk(ctx)
	if err != nil {
		return GCReport{}, err
	}
	liveBlobs, liveMans := g.needed(ctx, g.images)
	l, err := r.links(ctx)
	if err != nil {
		return GCReport{}, err
	}
	var rep GCReport
	cutoff := start.Add(-grace)
	type victim struct {
		digest string
		size   int64
	}
	var victims []victim
	err = sw.Blobs(ctx, func(digest string, size int64, created time.Time) error {
		if liveBlobs[digest] || len(l.cached[digest]) > 0 || created.After(cutoff) {
			rep.BlobsKept++
			return nil
		}
		victims = append(victims, victim{digest, size})
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, v := range victims {
		if err := r.store.DeleteBlob(ctx, v.digest, l.all[v.digest]); err != nil {
			return rep, err
		}
		rep.BlobsDeleted++
		rep.BytesFreed += v.size
	}
	for _, d := range manifests {
		if liveMans[d] {
			continue
		}
		if err := sw.DeleteManifest(ctx, d); err != nil {
			return rep, err
		}
		rep.ManifestsDeleted++
	}
	r.log.Info("garbage collection done", zap.Int("blobsDeleted", rep.BlobsDeleted), zap.Int64("bytesFreed", rep.BytesFreed),
		zap.Int("manifestsDeleted", rep.ManifestsDeleted), zap.Int("blobsKept", rep.BlobsKept), zap.Duration("took", time.Since(start)))
	return rep, nil
}
