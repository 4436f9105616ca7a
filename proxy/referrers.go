package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"berth/internal/oci"
	"berth/registry"
	"berth/store"
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
	ns := t.Upstream.Rule.Name
	r := ttlRecord{t: t, tag: referrersTag(d), kind: "referrers", ref: d.String()}
	m, err := p.ttlCached(ctx, r, func(ctx context.Context, _ *ttlEntry) (*registry.Manifest, error) {
		body, err := t.Upstream.GetReferrers(ctx, t.Repo, d.String())
		if err != nil {
			return nil, err
		}
		if _, err := parseReferrers(body); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", ns, err)
		}
		dg := registry.FromBytes(body).String()
		sm := &store.Manifest{MediaType: oci.MediaTypeImageIndex, Body: body}
		b := p.store.NewBatch()
		defer b.Close()
		if err := b.PutManifest(dg, sm); err != nil {
			return nil, err
		}
		if err := b.PutTag(ns, t.Repo, r.tag, store.Tag{Digest: dg, FetchedAt: p.now()}); err != nil {
			return nil, err
		}
		if err := b.Commit(); err != nil {
			return nil, err
		}
		return toManifest(dg, sm, registry.SourceUpstream), nil
	})
	own, oerr := p.ownReferrers(ctx, store.CachedKey(ns, t.Repo), d)
	if oerr != nil {
		return nil, oerr
	}
	if err != nil {
		if len(own) > 0 {
			return own, nil // Berth's own answer for the subject it holds
		}
		return nil, err
	}
	up, err := parseReferrers(m.Body)
	if err != nil {
		return nil, err
	}
	return mergeReferrers(up, own), nil
}

// ownReferrers are the referrers Berth itself attached to d in a cached
// repository (the scanner's SBOMs): stored with d's repository's records,
// so they are visible exactly where d is.
func (p *Proxy) ownReferrers(ctx context.Context, repo store.RepoKey, d registry.Digest) ([]registry.Descriptor, error) {
	raw, err := p.store.ListReferrers(ctx, repo, d.String())
	if err != nil {
		return nil, err
	}
	out := make([]registry.Descriptor, 0, len(raw))
	for _, r := range raw {
		var desc registry.Descriptor
		if err := json.Unmarshal(r, &desc); err == nil {
			out = append(out, desc)
		}
	}
	return out, nil
}

// mergeReferrers is the upstream's referrers and Berth's own, each once.
func mergeReferrers(up, own []registry.Descriptor) []registry.Descriptor {
	seen := map[registry.Digest]bool{}
	for _, d := range up {
		seen[d.Digest] = true
	}
	for _, d := range own {
		if !seen[d.Digest] {
			up = append(up, d)
		}
	}
	return up
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
