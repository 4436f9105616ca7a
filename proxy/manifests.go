package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"berth/errdefs"
	"berth/internal/oci"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// GetManifest serves a manifest by digest from the store (filling it on a
// miss) and by tag from the store while the tag is younger than its TTL,
// revalidating older tags with a HEAD and serving stale when the upstream
// cannot answer.
func (p *Proxy) GetManifest(ctx context.Context, req registry.ManifestRequest) (*registry.Manifest, error) {
	t, err := p.route(req.Repo)
	if err != nil {
		return nil, err
	}
	var m *registry.Manifest
	if req.Digest != "" {
		m, err = p.manifestByDigest(ctx, t, req.Digest.String())
	} else {
		m, err = p.manifestByTag(ctx, t, req.Reference)
	}
	if err != nil {
		return nil, err
	}
	return p.negotiate(ctx, t, req, m)
}

// manifestByDigest serves d from the store only when t's cached repository
// has an image record for it (store.RepoManifest); a manifest stored for
// any other repository is fetched from t's upstream, which records it for
// t, exactly as one never stored.
func (p *Proxy) manifestByDigest(ctx context.Context, t upstream.Target, d string) (*registry.Manifest, error) {
	repo := store.CachedKey(t.Upstream.Rule.Name, t.Repo)
	if sm, err := p.store.RepoManifest(ctx, repo, d); err == nil {
		p.opts.Metrics.CacheResult("manifest", "hit")
		_ = p.store.TouchImage(ctx, repo, d)
		return toManifest(d, sm, registry.SourceStore), nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	p.opts.Metrics.CacheResult("manifest", "miss")
	v, err := p.shared(ctx, "digest\x00"+repo.Encode()+"\x00"+d, func(ctx context.Context) (*registry.Manifest, error) {
		// A fetch that ended since the read above may have stored it.
		if sm, err := p.store.RepoManifest(ctx, repo, d); err == nil {
			return toManifest(d, sm, registry.SourceStore), nil
		}
		if m, ok, err := p.manifestFromOwners(ctx, t, d, d); ok {
			return m, err
		}
		desc, body, err := t.Upstream.GetManifest(ctx, t.Repo, d)
		if err != nil {
			return nil, err
		}
		sm := &store.Manifest{MediaType: desc.MediaType, Body: body}
		if err := p.storeManifest(ctx, t, d, sm, ""); err != nil {
			return nil, err
		}
		return toManifest(d, sm, registry.SourceUpstream), nil
	})
	if err != nil {
		return nil, p.upstreamError(t, "manifest "+d, errdefs.ManifestUnknown(d), err)
	}
	return v, nil
}

func (p *Proxy) manifestByTag(ctx context.Context, t upstream.Target, tag string) (*registry.Manifest, error) {
	r := ttlRecord{t: t, tag: tag, kind: "tag", metered: true, image: true, ref: tag}
	return p.ttlCached(ctx, r, func(ctx context.Context, old *ttlEntry) (*registry.Manifest, error) {
		// In a cluster the tag's owner revalidates it, once per TTL for
		// the whole cluster; the others ask it.
		if m, ok, err := p.manifestFromOwners(ctx, t, tagKey(t, tag), tag); ok {
			return m, err
		}
		if old != nil {
			desc, err := t.Upstream.HeadManifest(ctx, t.Repo, tag)
			if err != nil {
				return nil, err
			}
			if desc.Digest == old.tag.Digest {
				if err := p.store.PutTag(ctx, t.Upstream.Rule.Name, t.Repo, tag, p.confirmed(t, tag, old.tag.Digest)); err != nil {
					return nil, err
				}
				return old.served(registry.SourceStore), nil
			}
		}
		desc, body, err := t.Upstream.GetManifest(ctx, t.Repo, tag)
		if err != nil {
			return nil, err
		}
		sm := &store.Manifest{MediaType: desc.MediaType, Body: body}
		if err := p.storeManifest(ctx, t, desc.Digest, sm, tag); err != nil {
			return nil, err
		}
		return toManifest(desc.Digest, sm, registry.SourceUpstream), nil
	})
}

// shared runs fn once for every concurrent caller with the same key. fn
// runs detached from the callers' contexts, so one client leaving does not
// fail the others; each caller stops waiting when its own context ends.
func (p *Proxy) shared(ctx context.Context, key string, fn func(context.Context) (*registry.Manifest, error)) (*registry.Manifest, error) {
	ch := p.manifests.DoChan(key, func() (any, error) {
		return fn(context.WithoutCancel(ctx))
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		m := *r.Val.(*registry.Manifest) // a copy: callers may differ in Source
		return &m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// storeManifest keeps a verified manifest from an upstream with its image
// record (and the upstream's media type) in the cached repository, and
// its tag when fetched by tag (else ""), in one batch, so a tag never
// points at a manifest the store does not hold.
func (p *Proxy) storeManifest(ctx context.Context, t upstream.Target, d string, sm *store.Manifest, tag string) error {
	b := p.store.NewBatch()
	defer b.Close()
	if err := b.PutManifest(d, sm); err != nil {
		return err
	}
	repo := store.CachedKey(t.Upstream.Rule.Name, t.Repo)
	if err := b.PutImage(repo, d, store.Image{PushedAt: p.now().UTC(), MediaType: sm.MediaType}); err != nil {
		return err
	}
	if tag != "" {
		if err := b.PutTag(t.Upstream.Rule.Name, t.Repo, tag, p.confirmed(t, tag, d)); err != nil {
			return err
		}
	}
	if err := b.Commit(); err != nil {
		return err
	}
	if p.opts.ManifestStored != nil {
		p.opts.ManifestStored(t, d, sm.MediaType)
	}
	return nil
}

func toManifest(d string, sm *store.Manifest, src registry.Source) *registry.Manifest {
	return &registry.Manifest{MediaType: sm.MediaType, Digest: registry.Digest(d), Body: sm.Body, Source: src}
}

// negotiate honours Accept: a client that does not accept the stored type
// of an index gets the linux/amd64 manifest, as registries do for old
// clients; other mismatches are MANIFEST_UNKNOWN.
func (p *Proxy) negotiate(ctx context.Context, t upstream.Target, req registry.ManifestRequest, m *registry.Manifest) (*registry.Manifest, error) {
	if accepts(req.Accept, m.MediaType) {
		return m, nil
	}
	if req.Digest != "" {
		// A digest names exactly one manifest; serve it as it is.
		return m, nil
	}
	if !oci.IsIndex(m.MediaType) {
		return nil, errdefs.New(errdefs.ErrManifestUnknown,
			"manifest %s is a %s, which the client does not accept", req.Reference, m.MediaType)
	}
	var idx oci.Manifest
	if err := json.Unmarshal(m.Body, &idx); err != nil {
		return nil, fmt.Errorf("parse index %s: %w", m.Digest, err)
	}
	for _, e := range idx.Manifests {
		if e.Platform != nil && e.Platform.OS == "linux" && e.Platform.Architecture == "amd64" && accepts(req.Accept, e.MediaType) {
			d, err := registry.ParseDigest(e.Digest)
			if err != nil {
				return nil, err
			}
			return p.manifestByDigest(ctx, t, d.String())
		}
	}
	return nil, errdefs.New(errdefs.ErrManifestUnknown,
		"manifest %s is an index and the client accepts none of its entries", req.Reference)
}

func accepts(accept []string, mt string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		if a == mt || a == "*/*" || a == "application/*" {
			return true
		}
	}
	return false
}
