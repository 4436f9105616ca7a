package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"berth/cluster"
	"berth/errdefs"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
)

// Peer API. Nodes of a cluster ask each other for blobs and manifests with
// the registry API itself, under /v2/<upstream rule name>/<repository at
// the upstream>/..., on a listener that only signed peer requests reach.
// A node serves a peer from its store, from a fill in progress, or by
// filling from the upstream as the owner; it never forwards a peer's
// request to another peer, so there are no loops.

// headerStoreOnly marks a peer request that wants a stored copy only: a
// first owner asking its replicas before the upstream. It never joins or
// starts a fill, so two owners cannot wait on each other.
const headerStoreOnly = "X-Berth-Store-Only"

type storeOnlyKey struct{}

// PeerHandler serves the peer API; wrap it with the cluster's RequirePeer.
// opts add to the registry's options (the node's per-client shaping, so
// peers count against its serveBandwidth).
func (p *Proxy) PeerHandler(log *zap.Logger, opts ...registry.Option) http.Handler {
	reg := registry.New(peerBackend{p}, append([]registry.Option{registry.WithLogger(log)}, opts...)...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerStoreOnly) != "" {
			r = r.WithContext(context.WithValue(r.Context(), storeOnlyKey{}, true))
		}
		reg.ServeHTTP(w, r)
	})
}

func storeOnly(ctx context.Context) bool { v, _ := ctx.Value(storeOnlyKey{}).(bool); return v }

type peerBackend struct{ p *Proxy }

// target reads "<rule name>/<repository>" from a peer request.
func (b peerBackend) target(repo registry.Repo) (upstream.Target, error) {
	name, rest, ok := strings.Cut(repo.Name, "/")
	if ok {
		for _, u := range b.p.Router().Upstreams() {
			if u.Rule.Name == name {
				return upstream.Target{Upstream: u, Repo: rest}, nil
			}
		}
	}
	return upstream.Target{}, errdefs.RepositoryUnknown(repo.Name)
}

func (b peerBackend) GetManifest(ctx context.Context, req registry.ManifestRequest) (*registry.Manifest, error) {
	t, err := b.target(req.Repo)
	if err != nil {
		return nil, err
	}
	if req.Digest != "" {
		return b.p.manifestByDigest(ctx, t, req.Digest.String())
	}
	return b.p.manifestByTag(ctx, t, req.Reference)
}

func (b peerBackend) GetBlob(ctx context.Context, req registry.BlobRequest) (registry.Blob, error) {
	t, err := b.target(req.Repo)
	if err != nil {
		return nil, err
	}
	return b.p.blob(ctx, t, req)
}

// ownersToAsk returns the owners of key this node asks before the
// upstream: the owners ranked ahead of it, or, when it is the first owner,
// the other owners (replicas is true then), which only give a copy they
// already hold. Nothing without a cluster, or for a request that came from
// a peer (no loops).
func (p *Proxy) ownersToAsk(ctx context.Context, key string) (owners []cluster.Member, replicas bool) {
	if p.opts.Cluster == nil {
		return nil, false
	}
	if _, fromPeer := cluster.FromPeer(ctx); fromPeer {
		return nil, false
	}
	for i, m := range p.opts.Cluster.Owners(key) {
		if m.Self {
			if i > 0 {
				break // the owners ahead of this node are enough
			}
			replicas = true
			continue
		}
		if m.PeerAddr != "" {
			owners = append(owners, m)
		}
	}
	return owners, replicas
}

// tagKey is the ownership key of an upstream tag.
func tagKey(t upstream.Target, tag string) string {
	return "tag\x00" + t.Upstream.Rule.Name + "\x00" + t.Repo + "\x00" + tag
}

// manifestFromOwners asks the owners of key for a manifest (ref is a tag or
// a digest) and stores what one of them answers. ok is false when no owner
// could answer: the caller then asks the upstream itself. An owner's 404
// is the upstream's, and is returned as upstream.ErrNotFound.
func (p *Proxy) manifestFromOwners(ctx context.Context, t upstream.Target, key, ref string) (*registry.Manifest, bool, error) {
	owners, replicas := p.ownersToAsk(ctx, key)
	if replicas {
		return nil, false, nil // the first owner asks the upstream
	}
	for _, m := range owners {
		mt, body, d, err := p.peerClient(m, t).manifest(ctx, ref)
		if errors.Is(err, upstream.ErrNotFound) {
			return nil, true, err
		}
		if err != nil {
			p.log.Info("owner could not answer; trying the next", zap.String("peer", m.Name), zap.String("ref", ref), zap.Error(err))
			continue
		}
		tag := ""
		if !registry.IsDigest(ref) {
			tag = ref
		}
		sm := &store.Manifest{MediaType: mt, Body: body}
		if err := p.storeManifest(ctx, t, d, sm, tag); err != nil {
			return nil, true, err
		}
		return toManifest(d, sm, registry.SourcePeer), true, nil
	}
	return nil, false, nil
}
