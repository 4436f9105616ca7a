package node

import (
	"context"

	"berth/mirror"
	"berth/registry"
	"berth/replicate"

	"go.uber.org/zap"
)

// replicating is the node's backend: the mirror, with each manifest
// pushed to a local repository queued for replication.
type replicating struct {
	*mirror.Mirror
	r   *replicate.Replicator
	log *zap.Logger
	// pushed is told of every manifest pushed to a local repository
	// (scan on push); it never blocks.
	pushed func(ctx context.Context, repo, digest string)
}

func (b replicating) PutManifest(ctx context.Context, req registry.ManifestPut) (registry.PutResult, error) {
	res, err := b.Mirror.PutManifest(ctx, req)
	if err != nil || !req.Repo.Target.Local() {
		return res, err
	}
	tags := append([]string(nil), req.Tags...)
	if req.Digest == "" {
		tags = append(tags, req.Reference)
	}
	if qerr := b.r.Enqueue(ctx, req.Repo.Name, res.Digest.String(), tags); qerr != nil {
		b.log.Error("the push was stored but not queued for replication", zap.String("repo", req.Repo.Name), zap.Error(qerr))
	}
	if b.pushed != nil {
		b.pushed(ctx, req.Repo.Name, res.Digest.String())
	}
	return res, nil
}
