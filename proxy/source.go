package proxy

import (
	"context"
	"io"
	"time"

	"berth/upstream"
)

// source is where a fill reads a blob's bytes: the upstream, or a peer
// that owns the digest.
type source interface {
	// open reads the blob from off to last (last < 0: to the end) and
	// returns the whole blob's size.
	open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error)
	// head returns the blob's size without reading it.
	head(ctx context.Context) (int64, error)
	String() string
	isPeer() bool
}

type upstreamSource struct {
	up           *upstream.Upstream
	repo, digest string
}

func (s upstreamSource) open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error) {
	return s.up.GetBlobRange(ctx, s.repo, s.digest, off, last)
}
func (s upstreamSource) head(ctx context.Context) (int64, error) {
	return s.up.HeadBlob(ctx, s.repo, s.digest)
}
func (s upstreamSource) String() string { return "upstream " + s.up.Rule.Name }
func (s upstreamSource) isPeer() bool   { return false }

// peerSource reads from another node's peer API, which serves the blob
// from its store or its own fill and never forwards the request again.
type peerSource struct {
	c      peerClient
	digest string
	idle   time.Duration
	// storeOnly asks for a copy the peer already holds, never a fill.
	storeOnly bool
}

func (s peerSource) String() string { return "peer " + s.c.member.Name }
func (s peerSource) isPeer() bool   { return true }

func (s peerSource) head(ctx context.Context) (int64, error) {
	return s.c.headBlob(ctx, s.digest, s.storeOnly)
}

func (s peerSource) open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error) {
	return s.c.openBlob(ctx, s.digest, off, last, s.storeOnly, s.idle)
}

// sources lists where a fill of digest d should read from. A node that is
// not the digest's first owner asks the owners ahead of it, in order, then
// the upstream. The first owner asks the other owners for a copy they
// already hold (store only: a replica that survived while this node's
// store was replaced) before the upstream. A request from a peer goes to
// the upstream only, never to another peer. So a miss costs one upstream
// fetch per cluster, and availability beats dedupe when owners fail.
func (p *Proxy) sources(ctx context.Context, t upstream.Target, d string) []source {
	owners, replicas := p.ownersToAsk(ctx, d)
	out := make([]source, 0, len(owners)+1)
	for _, m := range owners {
		out = append(out, peerSource{c: p.peerClient(m, t), digest: d, idle: t.Upstream.Rule.IdleTimeout, storeOnly: replicas})
	}
	return append(out, upstreamSource{up: t.Upstream, repo: t.Repo, digest: d})
}
