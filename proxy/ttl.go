package proxy

import (
	"context"
	"errors"

	"berth/config"
	"berth/errdefs"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
)

// A ttlRecord is an upstream answer the store keeps under a tag of a
// cached repository for the rule's TTL: an upstream tag, or Berth's record
// of a digest's referrers index.
type ttlRecord struct {
	t   upstream.Target
	tag string // the store tag the record is kept under
	// kind names the record in the singleflight key and, when metered,
	// in berth_cache_requests_total.
	kind    string
	metered bool
	// image marks a record that points at an image of the repository
	// (an upstream tag): its manifest is read through the repository's
	// image record, and the image is marked pulled on a hit. Other
	// records (a referrers index) are Berth's own, reached only through
	// the repository's tag.
	image bool
	// ref is what the client named: the tag, or the digest whose
	// referrers these are. The names built from it (what, notFound) are
	// built only when needed, not on every hit.
	ref string
}

// what names the record in errors and logs.
func (r ttlRecord) what() string {
	if r.image {
		return "tag " + r.ref + " of " + r.t.Repo
	}
	return r.kind + " of " + r.ref
}

// notFound is the client's error when the upstream has no such thing.
func (r ttlRecord) notFound() error { return errdefs.ManifestUnknown(r.ref) }

// ttlEntry is a stored record: the tag and the manifest it points at.
type ttlEntry struct {
	tag      store.Tag
	manifest *store.Manifest
}

func (e *ttlEntry) served(src registry.Source) *registry.Manifest {
	return toManifest(e.tag.Digest, e.manifest, src)
}

// freshness is how long r is served without asking the upstream, and the
// name of the rule's policy that says so: for an upstream tag, the first
// of the rule's tagPolicies matching it, else the rule's ttl; Berth's own
// records (a referrers index) always follow the rule's ttl. This is the
// one place that decides; ttlCached applies it.
func (r ttlRecord) freshness() (config.Freshness, string) {
	if r.image {
		return r.t.Upstream.Rule.TagFreshness(r.tag)
	}
	return config.Freshness(r.t.Upstream.Rule.WithDefaults().TTL), "ttl"
}

// ttlCached serves r from the store while it is fresh (r.freshness: a TTL
// of 0 asks the upstream on every pull, never pins it). Past that, fetch
// runs once for all concurrent callers, detached from them; it gets the
// stored entry (nil when there is none) so it can revalidate it. That
// entry is read again when the fetch starts: one that just ended may have
// stored it fresh after a caller read it, and is not repeated. When the
// upstream says the thing is gone the entry is forgotten, or kept and
// served under onUpstreamDelete: keep; when the upstream fails, the stored
// entry is served stale.
func (p *Proxy) ttlCached(ctx context.Context, r ttlRecord, fetch func(ctx context.Context, old *ttlEntry) (*registry.Manifest, error)) (*registry.Manifest, error) {
	ns, repo := r.t.Upstream.Rule.Name, r.t.Repo
	old, err := p.loadEntry(ctx, r)
	if err != nil {
		return nil, err
	}
	if p.fresh(r, old) {
		p.count(r, "hit")
		return p.pulled(ctx, r, old.served(registry.SourceStore)), nil
	}
	m, err := p.shared(ctx, r.kind+"\x00"+ns+"\x00"+repo+"\x00"+r.tag, func(ctx context.Context) (*registry.Manifest, error) {
		// A fetch that ended after this caller read the entry and before
		// it asked for this one has stored a fresh entry: serve it rather
		// than fetch the same thing again.
		cur, err := p.loadEntry(ctx, r)
		if err != nil {
			return nil, err
		}
		if p.fresh(r, cur) {
			return cur.served(registry.SourceStore), nil
		}
		return fetch(ctx, cur)
	})
	switch {
	case err == nil:
		result := "miss"
		if m.Source == registry.SourceStore {
			result = "revalidated"
			if old == nil {
				result = "hit" // stored by a fetch that ended meanwhile
			}
		}
		p.count(r, result)
		return p.pulled(ctx, r, m), nil
	case errors.Is(err, upstream.ErrNotFound) && old != nil && r.image && r.t.Upstream.Rule.KeepsDeletedTags():
		p.count(r, "stale")
		p.log.Info("gone upstream; serving the cached digest (onUpstreamDelete: keep)", zap.String("upstream", ns),
			zap.String("what", r.what()), zap.String("digest", old.tag.Digest))
		return p.pulled(ctx, r, old.served(registry.SourceStale)), nil
	case errors.Is(err, upstream.ErrNotFound):
		if old != nil {
			p.log.Info("gone upstream; forgetting it", zap.String("what", r.what()))
			if derr := p.store.DeleteTag(ctx, ns, repo, r.tag); derr != nil {
				p.log.Warn("delete tag", zap.Error(derr))
			}
		}
		return nil, r.notFound()
	case old != nil && !errors.Is(err, context.Canceled):
		p.count(r, "stale")
		if !errors.Is(err, upstream.ErrOffline) {
			p.log.Warn("upstream failed; serving the cached copy", zap.String("upstream", ns),
				zap.String("what", r.what()), zap.Error(err))
		}
		return p.pulled(ctx, r, old.served(registry.SourceStale)), nil
	}
	return nil, p.upstreamError(r.t, r.what(), r.notFound(), err)
}

// fresh reports whether e, r's stored entry (nil: none), is served
// without asking the upstream.
func (p *Proxy) fresh(r ttlRecord, e *ttlEntry) bool {
	f, _ := r.freshness()
	return e != nil && f.Fresh(p.now().Sub(e.tag.FetchedAt))
}

// pulled records a pull of the image an upstream tag points at, however
// it was answered, and returns m.
func (p *Proxy) pulled(ctx context.Context, r ttlRecord, m *registry.Manifest) *registry.Manifest {
	if r.image {
		_ = p.store.TouchImage(ctx, store.CachedKey(r.t.Upstream.Rule.Name, r.t.Repo), m.Digest.String())
	}
	return m
}

// confirmed is the record of upstream tag tag of t pointing at digest,
// confirmed now, with the policy that decides its freshness.
func (p *Proxy) confirmed(t upstream.Target, tag, digest string) store.Tag {
	_, policy := t.Upstream.Rule.TagFreshness(tag)
	return store.Tag{Digest: digest, FetchedAt: p.now(), Policy: policy}
}

// loadEntry reads r's stored entry; nil when there is none, or when its
// manifest is not stored (then it is fetched again).
func (p *Proxy) loadEntry(ctx context.Context, r ttlRecord) (*ttlEntry, error) {
	tag, err := p.store.GetTag(ctx, r.t.Upstream.Rule.Name, r.t.Repo, r.tag)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var m *store.Manifest
	if r.image {
		m, err = p.store.RepoManifest(ctx, store.CachedKey(r.t.Upstream.Rule.Name, r.t.Repo), tag.Digest)
	} else {
		m, err = p.store.GetManifest(ctx, tag.Digest)
	}
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("a cached record points at a manifest that is not stored; fetching again",
			zap.String("what", r.what()), zap.String("digest", tag.Digest))
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return &ttlEntry{tag: tag, manifest: m}, nil
}

func (p *Proxy) count(r ttlRecord, result string) {
	if r.metered {
		p.opts.Metrics.CacheResult(r.kind, result)
	}
}
