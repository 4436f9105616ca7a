package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"berth/cluster"
	"berth/internal/oci"
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
func (p *Proxy) PeerHandler(log *zap.Logger) http.Handler {
	reg := registry.New(peerBackend{p}, registry.WithLogger(log))
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
	return upstream.Target{}, registry.ErrNameUnknown(repo.Name)
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

// peerOwners returns the owners of key ahead of this node, or nil when the
// request must not go to peers (no cluster, this node owns the key first,
// or the request came from a peer).
func (p *Proxy) peerOwners(ctx context.Context, key string) []cluster.Member {
	if p.opts.Cluster == nil {
		return nil
	}
	if _, fromPeer := cluster.FromPeer(ctx); fromPeer {
		return nil
	}
	var out []cluster.Member
	for _, m := range p.opts.Cluster.Owners(key) {
		if m.Self {
			break
		}
		if m.PeerAddr != "" {
			out = append(out, m)
		}
	}
	return out
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
	for _, m := range p.peerOwners(ctx, key) {
		mt, body, d, err := p.peerManifest(ctx, t, m, ref)
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

// peerManifest fetches a manifest from a peer and verifies its digest.
func (p *Proxy) peerManifest(ctx context.Context, t upstream.Target, m cluster.Member, ref string) (string, []byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*t.Upstream.Rule.Timeout)
	defer cancel()
	u := p.opts.Cluster.PeerURL(m) + "/v2/" + t.Upstream.Rule.Name + "/" + t.Repo + "/manifests/" + ref
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, "", err
	}
	req.Header.Set("Accept", oci.AcceptManifests)
	resp, err := p.opts.Cluster.PeerClient().Do(req)
	if err != nil {
		return "", nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestBytes+1))
	if err != nil {
		return "", nil, "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		var eb struct{ Errors []struct{ Code string } }
		if json.Unmarshal(body, &eb) == nil && len(eb.Errors) > 0 && eb.Errors[0].Code == registry.CodeManifestUnknown {
			return "", nil, "", fmt.Errorf("peer %s: %w", m.Name, upstream.ErrNotFound)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, "", fmt.Errorf("peer %s answered %d", m.Name, resp.StatusCode)
	}
	d := resp.Header.Get("Docker-Content-Digest")
	if registry.IsDigest(ref) {
		d = ref
	}
	dg, err := registry.ParseDigest(d)
	if err != nil || !dg.Verify(body) {
		return "", nil, "", fmt.Errorf("peer %s sent a manifest that does not match %q", m.Name, d)
	}
	return resp.Header.Get("Content-Type"), body, d, nil
}
