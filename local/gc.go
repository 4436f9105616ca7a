package local

import (
	"context"
	"encoding/json"
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

// GC is a mark-and-sweep over the whole store. It marks every manifest
// that belongs to a repository (local or cached), everything those
// manifests reference, and blobs linked to cached repositories; then it
// deletes unmarked manifests, and unmarked blobs older than grace (a blob
// uploaded but not yet referenced by a manifest is kept that long). Pushes
// wait while it runs, so it never races a manifest PUT.
func (r *Repos) GC(ctx context.Context, grace time.Duration) (GCReport, error) {
	r.gc.Lock()
	defer r.gc.Unlock()
	start := r.opts.Now()
	sw := r.store.Sweep()
	liveManifests := map[string]bool{}
	liveBlobs := map[string]bool{}
	var queue []string
	err := sw.Images(ctx, func(_ store.RepoKey, digest string) error {
		if !liveManifests[digest] {
			liveManifests[digest] = true
			queue = append(queue, digest)
		}
		return nil
	})
	if err != nil {
		return GCReport{}, err
	}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
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
				if !liveManifests[ref.Digest] {
					liveManifests[ref.Digest] = true
					queue = append(queue, ref.Digest)
				}
				continue
			}
			liveBlobs[ref.Digest] = true
		}
	}
	links := map[string][]store.RepoKey{}
	err = sw.Links(ctx, func(repo store.RepoKey, digest string, linked bool) error {
		links[digest] = append(links[digest], repo)
		if linked && repo.Cached() {
			liveBlobs[digest] = true // pulled through the cache; evicted, not collected
		}
		return nil
	})
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
		if liveBlobs[digest] || created.After(cutoff) {
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
		if err := sw.DeleteLinks(ctx, v.digest, links[v.digest]); err != nil {
			return rep, err
		}
		rep.BlobsDeleted++
		rep.BytesFreed += v.size
	}
	var deadManifests []string
	err = sw.Manifests(ctx, func(digest string) error {
		if !liveManifests[digest] {
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
