package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"berth/config"
	"berth/errdefs"
	"berth/internal/oci"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// LocalNS is the store's tag namespace of local repositories (local.NS).
const LocalNS = ""

// Store is the node's store and routing, read by export and written by
// import.
type Store struct {
	Store *store.Store
	// Routes is the routing in force.
	Routes func() *upstream.Router
	Now    func() time.Time
	// Reserve, when set, is asked for room before import writes a cached
	// image's blob, as a fill does (local images' uploads are charged by
	// the backend).
	Reserve func(ctx context.Context, size int64) error
	// CheckLocal, when set, is a dry run of a local image's manifest PUT
	// (repository and tag preconditions: local.Repos.CheckPut). Import asks
	// it for every local image before it puts the first, so a refusal
	// (an immutable tag that points elsewhere) leaves nothing imported.
	CheckLocal func(ctx context.Context, repo, tag, digest string) error
	// Settle, when set, waits for the node's fills in flight to commit
	// (proxy.WaitFills): a client has a fill's last byte before its
	// commit, so an image pulled just before the export is held whole.
	Settle func(ctx context.Context) error
}

// ExportRequest says what to export.
type ExportRequest struct {
	// Refs are images as clients pull them through Berth:
	// "docker-hub/library/alpine:3.20", "quay/prom/prometheus@sha256:…",
	// "private/app:v1".
	Refs []string `json:"refs"`
	// AllPlatforms exports every child of an index (each must be held);
	// otherwise the children the node holds.
	AllPlatforms bool `json:"allPlatforms,omitempty"`
	// Since makes a delta: blobs the old bundle carried are left out.
	Since *Since `json:"since,omitempty"`
}

// Since is what an old bundle carried.
type Since struct {
	// Base is the digest of the old bundle's index.json.
	Base string `json:"base"`
	// Blobs are the digests of the old bundle's blobs.
	Blobs []string `json:"blobs"`
}

// Plan is an export resolved against the store: its index and the blobs
// to write, manifests first.
type Plan struct {
	Index     []byte
	manifests []string
	blobs     []blobRef
}

type blobRef struct {
	digest string
	size   int64
}

// route is an image named as clients pull it, resolved.
type route struct {
	ref      string // as given
	ns, repo string // the store's tag namespace and repository
	// shared says the route's rule has no credentials: its fetched
	// content is seen by the rule's other repositories (store.Origin).
	shared bool
	tag    string
	digest string
}

// resolve finds the store's names of ref.
func (s Store) resolve(ref string) (route, error) {
	name, r := config.SplitRef(ref)
	if r == "" {
		return route{}, errdefs.New(errdefs.ErrInvalidParameter, "%q names no tag or digest; write name:tag or name@sha256:…", ref)
	}
	rt := route{ref: ref, repo: name, ns: LocalNS}
	if t, err := s.Routes().RouteCanonical(name); err == nil {
		rt.ns, rt.repo, rt.shared = t.Upstream.Rule.Name, t.Repo, !t.Upstream.Rule.HasCredentials()
	} else if !errors.Is(err, upstream.ErrNoRoute) {
		return route{}, errdefs.Wrap(errdefs.ErrRepositoryUnknown, err, "%q does not name a repository of this node", name)
	}
	if !registry.ValidName(rt.repo) {
		return route{}, errdefs.New(errdefs.ErrInvalidParameter, "%q is not a valid repository name (lower-case path components of letters, digits and separators)", rt.repo)
	}
	switch {
	case registry.IsDigest(r):
		if _, err := registry.ParseDigest(r); err != nil {
			return route{}, errdefs.Wrap(errdefs.ErrInvalidParameter, err, "%q names an invalid digest", ref)
		}
		rt.digest = r
	case registry.ValidTag(r):
		rt.tag = r
	default:
		return route{}, errdefs.New(errdefs.ErrInvalidParameter, "%q names an invalid tag: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", ref)
	}
	return rt, nil
}

// PlanExport resolves req against the store: every image must be held,
// with every blob it needs.
func (s Store) PlanExport(ctx context.Context, req ExportRequest) (*Plan, error) {
	if len(req.Refs) == 0 {
		return nil, errdefs.New(errdefs.ErrInvalidParameter, "name at least one image to export")
	}
	if s.Settle != nil {
		if err := s.Settle(ctx); err != nil {
			return nil, fmt.Errorf("wait for the fills in flight: %w", err)
		}
	}
	skip := map[string]bool{}
	x := Index{SchemaVersion: 2, MediaType: oci.MediaTypeImageIndex, Manifests: []oci.Descriptor{},
		Annotations: map[string]string{AnnotationCreated: s.Now().UTC().Format(time.RFC3339Nano)}}
	if req.Since != nil {
		for _, d := range req.Since.Blobs {
			skip[d] = true
		}
		x.Annotations[AnnotationBase] = req.Since.Base
	}
	p := &Plan{}
	seen := map[string]bool{}
	for _, ref := range req.Refs {
		rt, err := s.resolve(ref)
		if err != nil {
			return nil, err
		}
		if rt.tag != "" {
			t, err := s.Store.GetTag(ctx, rt.ns, rt.repo, rt.tag)
			if errors.Is(err, store.ErrNotFound) {
				return nil, errdefs.New(errdefs.ErrManifestUnknown, "%s is not held by this node; pull it through Berth first", ref)
			} else if err != nil {
				return nil, err
			}
			rt.digest = t.Digest
		}
		m, err := s.Store.GetManifest(ctx, rt.digest)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errdefs.New(errdefs.ErrManifestUnknown, "%s (%s) is not held by this node; pull it through Berth first", ref, rt.digest)
		} else if err != nil {
			return nil, err
		}
		x.Manifests = append(x.Manifests, oci.Descriptor{MediaType: m.MediaType, Digest: rt.digest, Size: int64(len(m.Body)),
			Annotations: map[string]string{AnnotationRefName: ref, AnnotationRoute: ref}})
		from := len(p.manifests)
		if err := s.walk(ctx, p, rt.digest, m, req.AllPlatforms, ref, seen, skip); err != nil {
			return nil, err
		}
		if err := s.referrers(ctx, p, &x, rt, p.manifests[from:], seen, skip); err != nil {
			return nil, err
		}
	}
	var err error
	if p.Index, err = json.Marshal(x); err != nil {
		return nil, err
	}
	return p, nil
}

// referrers adds the manifests that refer to subjects (an image's
// manifests) in the image's repository — SBOMs, signatures — and their
// own referrers, each as an image of the same route named by digest: an
// import records it as a referrer there, so it crosses the gap with its
// subject. A referrer whose content the node does not hold whole is left
// out; it is not part of the image the bundle was asked for.
func (s Store) referrers(ctx context.Context, p *Plan, x *Index, rt route, subjects []string, seen, skip map[string]bool) error {
	key := store.LocalKey(rt.repo)
	if rt.ns != LocalNS {
		key = store.CachedKey(rt.ns, rt.repo)
	}
	name, _ := config.SplitRef(rt.ref)
	subjects = slices.Clone(subjects)
	for i := 0; i < len(subjects) && len(x.Manifests) < MaxRoutes; i++ {
		descs, err := s.Store.ListReferrers(ctx, key, subjects[i])
		if err != nil {
			return fmt.Errorf("referrers of %s: %w", subjects[i], err)
		}
		for _, raw := range descs {
			var d oci.Descriptor
			if json.Unmarshal(raw, &d) != nil || seen[d.Digest] {
				continue
			}
			m, err := s.Store.GetManifest(ctx, d.Digest)
			if errors.Is(err, store.ErrNotFound) {
				continue // the entry outlived its manifest
			} else if err != nil {
				return err
			}
			ref := name + "@" + d.Digest
			sub := &Plan{}
			subSeen := maps.Clone(seen)
			if err := s.walk(ctx, sub, d.Digest, m, false, ref, subSeen, skip); errors.Is(err, errdefs.ErrBlobUnknown) {
				continue
			} else if err != nil {
				return err
			}
			maps.Copy(seen, subSeen)
			p.manifests = append(p.manifests, sub.manifests...)
			p.blobs = append(p.blobs, sub.blobs...)
			subjects = append(subjects, sub.manifests...)
			x.Manifests = append(x.Manifests, oci.Descriptor{MediaType: m.MediaType, Digest: d.Digest, Size: int64(len(m.Body)),
				Annotations: map[string]string{AnnotationRefName: ref, AnnotationRoute: ref}})
		}
	}
	return nil
}

// walk adds manifest d (body m) and what it needs to the plan.
func (s Store) walk(ctx context.Context, p *Plan, d string, m *store.Manifest, all bool, ref string, seen, skip map[string]bool) error {
	if seen[d] {
		return nil
	}
	seen[d] = true
	p.manifests = append(p.manifests, d)
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		return fmt.Errorf("manifest %s of %s: %w", d, ref, err)
	}
	for _, c := range doc.Manifests {
		cm, err := s.Store.GetManifest(ctx, c.Digest)
		if errors.Is(err, store.ErrNotFound) && !all {
			continue // a platform this node does not hold
		} else if errors.Is(err, store.ErrNotFound) {
			return errdefs.New(errdefs.ErrManifestUnknown, "%s: the platform manifest %s is not held by this node; pull it, or export without --all-platforms", ref, c.Digest)
		} else if err != nil {
			return err
		}
		if err := s.walk(ctx, p, c.Digest, cm, all, ref, seen, skip); err != nil {
			return err
		}
	}
	for _, b := range doc.Refs() {
		if oci.IsManifest(b.MediaType) || oci.NonDistributable(b.MediaType) || seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		info, err := s.Store.StatBlob(ctx, b.Digest)
		if errors.Is(err, store.ErrNotFound) {
			return errdefs.New(errdefs.ErrBlobUnknown, "%s: blob %s is not held by this node; pull the image through Berth first", ref, b.Digest)
		} else if err != nil {
			return err
		}
		if !skip[b.Digest] {
			p.blobs = append(p.blobs, blobRef{digest: b.Digest, size: info.Size})
		}
	}
	return nil
}

// WriteExport streams the plan's bundle to w: the index (and sig, when
// not nil), then each manifest and blob read from the store.
func (s Store) WriteExport(ctx context.Context, p *Plan, w io.Writer, sig []byte) error {
	bw, err := NewWriter(w, p.Index, sig)
	if err != nil {
		return err
	}
	for _, d := range p.manifests {
		m, err := s.Store.GetManifest(ctx, d)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
		if err := bw.Blob(d, int64(len(m.Body)), bytes.NewReader(m.Body)); err != nil {
			return err
		}
	}
	for _, b := range p.blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, _, err := s.Store.OpenBlob(ctx, b.digest)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.digest, err)
		}
		err = bw.Blob(b.digest, b.size, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return bw.Close()
}
