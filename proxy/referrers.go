package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// referrersTag is the store key, among a cached repository's tags, of the
// referrers index of a digest. "~" cannot start a real tag.
func referrersTag(d registry.Digest) string { return "~referrers~" + d.String() }

// hiddenTag reports whether a stored tag is Berth's own, not the upstream's.
func hiddenTag(tag string) bool { return strings.HasPrefix(tag, "~") }

// Referrers lists the referrers of d in a cached repository: the upstream's
// referrers API, or its sha256-<hex> tag, cached like a tag for the rule's
// TTL and served stale when the upstream cannot be asked.
func (p *Proxy) Referrers(ctx context.Context, repo registry.Repo, d registry.Digest) ([]registry.Descriptor, error) {
	t, err := p.route(repo)
	if err != nil {
		return nil, err
	}
	ns, tag := t.Upstream.Rule.Name, referrersTag(d)
	cachedTag, err := p.store.GetTag(ctx, ns, t.Repo, tag)
	var cached *store.Manifest
	if err == nil {
		cached, _ = p.store.GetManifest(ctx, cachedTag.Digest)
	}
	if cached != nil && p.now().Sub(cachedTag.FetchedAt) < t.Upstream.Rule.TTL {
		return parseReferrers(cached.Body)
	}
	m, err := p.shared(ctx, "referrers\x00"+ns+"\x00"+t.Repo+"\x00"+d.String(), func(ctx context.Context) (*registry.Manifest, error) {
		body, err := t.Upstream.GetReferrers(ctx, t.Repo, d.String())
		if err != nil {
			return nil, err
		}
		if _, err := parseReferrers(body); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", ns, err)
		}
		dg := registry.FromBytes(body).String()
		sm := &store.Manifest{MediaType: "application/vnd.oci.image.index.v1+json", Body: body}
		b := p.store.NewBatch()
		defer b.Close()
		if err := b.PutManifest(dg, sm); err != nil {
			return nil, err
		}
		if err := b.PutTag(ns, t.Repo, tag, store.Tag{Digest: dg, FetchedAt: p.now()}); err != nil {
			return nil, err
		}
		if err := b.Commit(); err != nil {
			return nil, err
		}
		return toManifest(dg, sm, registry.SourceUpstream), nil
	})
	if err == nil {
		return parseReferrers(m.Body)
	}
	if cached != nil && !errors.Is(err, context.Canceled) {
		p.log.Warn("upstream failed; serving cached referrers", zap.String("repo", t.Repo), zap.String("digest", d.String()), zap.Error(err))
		return parseReferrers(cached.Body)
	}
	return nil, p.upstreamError(t, "referrers of "+d.String(), registry.ErrManifestUnknown(d.String()), err)
}

func parseReferrers(body []byte) ([]registry.Descriptor, error) {
	var idx struct {
		Manifests []registry.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("referrers index is not valid JSON: %w", err)
	}
	if idx.Manifests == nil {
		idx.Manifests = []registry.Descriptor{}
	}
	return idx.Manifests, nil
}
