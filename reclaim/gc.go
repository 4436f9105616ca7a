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
func (r *Reclaimer) GC(ctx context.Context, grace time.Duration) (GCReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.now()
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
	sw := r.store.Sweep()
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
		if err := r.store.DeleteBlob(ctx, v.digest); err != nil {
			return rep, err
		}
		if err := sw.DeleteLinks(ctx, v.digest, l.all[v.digest]); err != nil {
			return rep, err
		}
		rep.BlobsDeleted++
		rep.BytesFreed += v.size
	}
	var deadManifests []string
	err = sw.Manifests(ctx, func(digest string) error {
		if !liveMans[digest] {
			deadManifests = append(deadManifests, digest)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, d := range deadManifests {
		if err := sw.DeleteManifest(ctx, d); err != nil {
			return rep, err
		}
		rep.ManifestsDeleted++
	}
	r.log.Info("garbage collection done", zap.Int("blobsDeleted", rep.BlobsDeleted), zap.Int64("bytesFreed", rep.BytesFreed),
		zap.Int("manifestsDeleted", rep.ManifestsDeleted), zap.Int("blobsKept", rep.BlobsKept), zap.Duration("took", time.Since(start)))
	return rep, nil
}
