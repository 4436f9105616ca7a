package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"berth/errdefs"
	"berth/internal/oci"
	"berth/registry"
	"berth/store"
)

// image is one manifest of an imported image's closure.
type image struct {
	digest    string
	mediaType string
	body      []byte
	blobs     []string
	// subject and referrer, for a manifest with a subject: the subject's
	// digest and the manifest's referrers-API entry.
	subject  string
	referrer *registry.Descriptor
}

// closure is the manifests of route i, children first, each read as the
// media type its descriptor (ct) or the node's image record says; a child the
// bundle leaves out and from does not see is a platform not carried.
// Content the bundle does not carry must already be visible to one of
// from (the repositories the route may take it from, see sources): a
// digest alone lifts nothing out of another repository.
func (im *importer) closure(ctx context.Context, d, ct string, top bool, from []store.RepoKey, out *[]image, seen map[string]bool) error {
	if seen[d] {
		return nil
	}
	seen[d] = true
	body := im.manifests[d]
	if body == nil {
		m, err := im.visibleManifest(ctx, from, d)
		switch {
		case errors.Is(err, store.ErrNotFound) && !top:
			return nil
		case errors.Is(err, store.ErrNotFound):
			return im.missing("manifest " + d)
		case err != nil:
			return err
		}
		body, ct = m.Body, m.MediaType
	}
	doc, mt, err := registry.ParseManifest(ct, body)
	if err != nil {
		return refuse(err, "manifest %s: %v; nothing was imported", d, err)
	}
	img := image{digest: d, mediaType: mt, body: body}
	if doc.Subject != nil {
		desc := registry.ReferrerDescriptor(doc, mt, registry.Digest(d), int64(len(body)))
		img.subject, img.referrer = doc.Subject.Digest, &desc
	}
	for _, c := range doc.Refs() {
		switch {
		case oci.IsManifest(c.MediaType):
			if err := im.closure(ctx, c.Digest, c.MediaType, false, from, out, seen); err != nil {
				return err
			}
		case !oci.NonDistributable(c.MediaType):
			if err := im.blobVisible(ctx, from, c.Digest); err != nil {
				return err
			}
			img.blobs = append(img.blobs, c.Digest)
		}
	}
	*out = append(*out, img)
	return nil
}

// sources are the repositories route i may take content the bundle does
// not carry from: a cached route only its own repository (a delta's base
// imported it there); a local route also the bundle's other routes, whose
// content is checked the same way (a delta's base carried it for them).
func (im *importer) sources(i int) []store.RepoKey {
	if rt := im.routes[i]; rt.ns != LocalNS {
		return []store.RepoKey{store.CachedKey(rt.ns, rt.repo)}
	}
	keys := []store.RepoKey{store.LocalKey(im.routes[i].repo)}
	for j, rt := range im.routes {
		if j == i {
			continue
		}
		if rt.ns == LocalNS {
			keys = append(keys, store.LocalKey(rt.repo))
		} else {
			keys = append(keys, store.CachedKey(rt.ns, rt.repo))
		}
	}
	return keys
}

// visibleManifest is manifest d as the first of from that sees it has it.
func (im *importer) visibleManifest(ctx context.Context, from []store.RepoKey, d string) (*store.Manifest, error) {
	for _, k := range from {
		m, err := im.s.Store.RepoManifest(ctx, k, d)
		if !errors.Is(err, store.ErrNotFound) {
			return m, err
		}
	}
	return nil, store.ErrNotFound
}

// blobVisible checks that blob d is carried by the bundle or seen by one
// of from.
func (im *importer) blobVisible(ctx context.Context, from []store.RepoKey, d string) error {
	if im.carried[d] {
		return nil
	}
	for _, k := range from {
		_, err := im.s.Store.Visible(ctx, k, d)
		if err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return im.missing("blob " + d)
}

// missing refuses a bundle that needs what neither it nor the node holds.
func (im *importer) missing(what string) error {
	if im.res.Base != "" {
		return errdefs.New(errdefs.ErrInvalidParameter, "bundle refused: it is a delta on the bundle whose index is %s, and this node does not hold %s that it leaves out; import that bundle first (nothing of this one was imported)", im.res.Base, what)
	}
	return invalid("the bundle does not carry %s; nothing was imported", what)
}

// commit writes the images' records once everything is verified: cached
// images as a pull-through fill records them (manifest, image record with
// its media type, blobs' origin records, tag), local ones through the
// backend's manifest PUT.
func (im *importer) commit(ctx context.Context) error {
	closures := make([][]image, len(im.routes))
	for i, rt := range im.routes {
		if err := im.closure(ctx, rt.digest, im.x.Manifests[i].MediaType, true, im.sources(i), &closures[i], map[string]bool{}); err != nil {
			return err
		}
	}
	if err := im.checkLocal(ctx); err != nil {
		return err
	}
	b := im.s.Store.NewBatch()
	defer b.Close()
	stamp := im.stampOf().UTC()
	for i, rt := range im.routes {
		if rt.ns == LocalNS {
			continue
		}
		key := store.CachedKey(rt.ns, rt.repo)
		origin := store.Origin{Repo: key, Shared: rt.shared}
		for _, m := range closures[i] {
			if err := errors.Join(b.PutManifest(m.digest, &store.Manifest{MediaType: m.mediaType, Body: m.body}),
				b.PutImage(key, m.digest, store.Image{PushedAt: stamp, MediaType: m.mediaType}), b.LinkOrigin(origin, m.blobs...)); err != nil {
				return err
			}
			if err := putReferrer(b, key, m); err != nil {
				return err
			}
		}
		if rt.tag != "" {
			if err := b.PutTag(rt.ns, rt.repo, rt.tag, store.Tag{Digest: rt.digest, FetchedAt: stamp}); err != nil {
				return err
			}
		}
	}
	for i, rt := range im.routes {
		if rt.ns == LocalNS {
			if err := im.pushLocal(ctx, rt, closures[i]); err != nil {
				return err
			}
		}
	}
	if err := b.Commit(); err != nil {
		return err
	}
	for _, rt := range im.routes {
		im.res.Images = append(im.res.Images, rt.ref)
	}
	return nil
}

// putReferrer records a cached image with a subject as its subject's
// referrer (a local one is recorded by the backend's manifest PUT).
func putReferrer(b *store.Batch, key store.RepoKey, m image) error {
	if m.referrer == nil {
		return nil
	}
	desc, err := json.Marshal(m.referrer)
	if err != nil {
		return err
	}
	return b.PutReferrer(key, m.subject, m.digest, desc)
}

// checkLocal checks every local image's repository and tag before any is
// put: a refusal leaves nothing of the bundle imported.
func (im *importer) checkLocal(ctx context.Context) error {
	if im.s.CheckLocal == nil {
		return nil
	}
	for _, rt := range im.routes {
		if rt.ns != LocalNS {
			continue
		}
		if err := im.s.CheckLocal(ctx, rt.repo, rt.tag, rt.digest); err != nil {
			return fmt.Errorf("bundle refused: import %s: %w (nothing of the bundle was imported)", rt.ref, err)
		}
	}
	return nil
}

// uploadHeld uploads a blob the node holds, but not for repo (a delta
// left it out because its base carried it for another image), from the
// store into repo: the push path verifies and links it, as it would a
// client's upload. No other repository's link is borrowed.
func (im *importer) uploadHeld(ctx context.Context, repo registry.Repo, d string) error {
	info, err := im.s.Store.StatBlob(ctx, d)
	if err != nil {
		return err
	}
	f, err := (&store.BlobFile{Store: im.s.Store, Digest: d, Len: info.Size}).Open(ctx, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	up, err := im.push.StartUpload(ctx, repo)
	if err != nil {
		return err
	}
	if _, err := up.Append(ctx, f); err != nil {
		_ = up.Cancel(ctx)
		return err
	}
	if err := up.Commit(ctx, registry.Digest(d)); err != nil {
		_ = up.Cancel(ctx)
		return err
	}
	return nil
}

// pushLocal puts a local image's manifests, children first, the top one
// under its tag; a blob held but not linked to the repository is uploaded
// from the store.
func (im *importer) pushLocal(ctx context.Context, rt route, ms []image) error {
	repo := localRepo(rt.repo)
	for _, m := range ms {
		for _, d := range m.blobs {
			if linked, _, err := im.s.Store.LinkState(ctx, store.LocalKey(rt.repo), d); err == nil && !linked {
				if err := im.uploadHeld(ctx, repo, d); err != nil {
					return fmt.Errorf("link blob %s into %s: %w", d, rt.repo, err)
				}
			}
		}
		ref := m.digest
		if m.digest == rt.digest && rt.tag != "" {
			ref = rt.tag
		}
		put := registry.ManifestPut{Repo: repo, Reference: ref, MediaType: m.mediaType, Body: m.body}
		if ref == m.digest {
			put.Digest = registry.Digest(m.digest)
		}
		if _, err := im.push.PutManifest(ctx, put); err != nil {
			return fmt.Errorf("import %s: %w", rt.ref, err)
		}
	}
	return nil
}
