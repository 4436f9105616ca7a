package local

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"berth/errdefs"
	"berth/internal/oci"
	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// inlineData reports whether a descriptor carries its content in data.
func inlineData(d oci.Descriptor) bool {
	if d.Data == "" {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(d.Data)
	if err != nil {
		return false
	}
	dg, err := registry.ParseDigest(d.Digest)
	return err == nil && dg.Verify(b)
}

// PutManifest stores a pushed manifest: it checks JSON, media type and
// digest, that every referenced blob and child manifest exists, and tag
// immutability; then the manifest, its image record, tags, blob links and
// referrer entry land in one batch.
func (r *Repos) PutManifest(ctx context.Context, req registry.ManifestPut) (registry.PutResult, error) {
	doc, mt, err := registry.ParseManifest(req.MediaType, req.Body)
	if err != nil {
		return registry.PutResult{}, err
	}
	dg, tags, err := pushedDigest(req)
	if err != nil {
		return registry.PutResult{}, err
	}
	repo := req.Repo.Name

	defer r.reclaim.Push()()
	rec, err := r.ensureRepository(ctx, repo)
	if err != nil {
		return registry.PutResult{}, err
	}
	links, err := r.manifestLinks(ctx, repo, doc)
	if err != nil {
		return registry.PutResult{}, err
	}
	// Immutable tags are checked and written under tagMu, so that two
	// concurrent pushes cannot both find a tag free and both set it.
	if slices.ContainsFunc(tags, func(tag string) bool { return tagImmutable(rec, tag) }) {
		r.tagMu.Lock()
		defer r.tagMu.Unlock()
	}
	if err := r.checkImmutable(ctx, rec, tags, dg.String()); err != nil {
		return registry.PutResult{}, err
	}
	res, err := r.commitManifest(ctx, manifestWrite{
		repo: repo, digest: dg, mediaType: mt, body: req.Body,
		doc: doc, tags: tags, links: links,
	})
	if err != nil {
		return registry.PutResult{}, err
	}
	r.log.Info("manifest pushed", zap.String("repo", repo), zap.String("digest", dg.String()), zap.Strings("tags", tags))
	return res, nil
}

// pushedDigest is the digest a pushed manifest is stored under (the one
// named in the request, which its body must match, or the body's own) and
// the tags it sets: the requested ones plus the reference when that is a tag.
func pushedDigest(req registry.ManifestPut) (registry.Digest, []string, error) {
	tags := slices.Clone(req.Tags)
	if req.Digest == "" {
		return registry.FromBytes(req.Body), append(tags, req.Reference), nil
	}
	if !req.Digest.Verify(req.Body) {
		return "", nil, errdefs.New(errdefs.ErrDigestInvalid, "manifest body does not match digest %s", req.Digest)
	}
	return req.Digest, tags, nil
}

// manifestLinks checks that every blob and child manifest doc references is
// in repo and returns the blobs the image links there. Non-distributable
// layers and descriptors carrying their content inline need nothing stored.
func (r *Repos) manifestLinks(ctx context.Context, repo string, doc *oci.Manifest) ([]string, error) {
	var links []string
	for _, d := range doc.Refs() {
		if oci.NonDistributable(d.MediaType) || inlineData(d) {
			continue
		}
		if oci.IsManifest(d.MediaType) {
			if err := r.requireManifest(ctx, repo, d.Digest); err != nil {
				return nil, err
			}
			continue
		}
		if _, ok, err := r.visible(ctx, repo, d.Digest); err != nil {
			return nil, err
		} else if !ok {
			return nil, errdefs.New(errdefs.ErrManifestBlobUnknown,
				"manifest references blob %s, which is not in repository %s", d.Digest, repo)
		}
		links = append(links, d.Digest)
	}
	return links, nil
}

// manifestWrite is a checked manifest push, ready to be stored.
type manifestWrite struct {
	repo      string
	digest    registry.Digest
	mediaType string
	body      []byte
	doc       *oci.Manifest
	tags      []string
	links     []string
}

// commitManifest writes a checked push in one batch: the manifest, the
// repository's image record, its blob links, its tags and, for a manifest
// with a subject, the referrer entry.
func (r *Repos) commitManifest(ctx context.Context, w manifestWrite) (registry.PutResult, error) {
	dg := w.digest.String()
	key := store.LocalKey(w.repo)
	now := r.opts.Now().UTC()
	b := r.store.NewBatch()
	defer b.Close()
	if err := b.PutManifest(dg, &store.Manifest{MediaType: w.mediaType, Body: w.body}); err != nil {
		return registry.PutResult{}, err
	}
	im := store.Image{PushedAt: now}
	if old, err := r.store.GetImage(ctx, key, dg); err == nil {
		im = old // a re-push keeps the first push time
	}
	im.MediaType = w.mediaType // this repository's type, never another's
	if err := b.PutImage(key, dg, im); err != nil {
		return registry.PutResult{}, err
	}
	if err := b.Link(key, w.links...); err != nil {
		return registry.PutResult{}, err
	}
	for _, tag := range w.tags {
		if err := b.PutTag(NS, w.repo, tag, store.Tag{Digest: dg, FetchedAt: now}); err != nil {
			return registry.PutResult{}, err
		}
	}
	res := registry.PutResult{Digest: w.digest}
	if w.doc.Subject != nil {
		desc, _ := json.Marshal(registry.ReferrerDescriptor(w.doc, w.mediaType, w.digest, int64(len(w.body))))
		if err := b.PutReferrer(key, w.doc.Subject.Digest, dg, desc); err != nil {
			return registry.PutResult{}, err
		}
		res.Subject = registry.Digest(w.doc.Subject.Digest)
	}
	if err := b.Commit(); err != nil {
		return registry.PutResult{}, err
	}
	return res, nil
}

// requireManifest checks that a child manifest of an index is an image of
// the repository. A manifest stored for another repository does not count,
// and is answered exactly like one never pushed: an index push must not
// tell whether someone else's digest exists.
func (r *Repos) requireManifest(ctx context.Context, repo, d string) error {
	_, err := r.store.RepoManifest(ctx, store.LocalKey(repo), d)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	return errdefs.New(errdefs.ErrManifestBlobUnknown,
		"index references manifest %s, which is not in repository %s; push it there first", d, repo)
}

// GetManifest serves a manifest of a local repository. A pull reads the
// tag (by tag), the image record and the manifest, not the repository's
// record: a repository's record is written before its first image and
// deleted with its last, so it is read only to tell a repository that
// does not exist from a manifest it does not hold.
func (r *Repos) GetManifest(ctx context.Context, req registry.ManifestRequest) (*registry.Manifest, error) {
	repo := req.Repo.Name
	d := req.Digest.String()
	if req.Digest == "" {
		t, err := r.store.GetTag(ctx, NS, repo, req.Reference)
		if errors.Is(err, store.ErrNotFound) {
			return nil, r.manifestUnknown(ctx, repo, req.Reference)
		}
		if err != nil {
			return nil, err
		}
		d = t.Digest
	}
	// Only an image of this repository, under the media type it was
	// pushed here with; a digest stored for anyone else is unknown here.
	m, err := r.store.RepoManifest(ctx, store.LocalKey(repo), d)
	if errors.Is(err, store.ErrNotFound) {
		return nil, r.manifestUnknown(ctx, repo, req.Reference)
	}
	if err != nil {
		return nil, err
	}
	if !req.Head {
		if err := r.store.TouchImage(ctx, store.LocalKey(repo), d); err != nil {
			r.log.Debug("touch image", zap.Error(err))
		}
	}
	return &registry.Manifest{MediaType: m.MediaType, Digest: registry.Digest(d), Body: m.Body, Source: registry.SourceLocal}, nil
}

// manifestUnknown is the error of a pull of ref that repo does not hold:
// the repository is unknown, or the manifest is.
func (r *Repos) manifestUnknown(ctx context.Context, repo, ref string) error {
	if _, err := r.Repository(ctx, repo); err != nil {
		return err
	}
	return errdefs.ManifestUnknown(ref)
}

// DeleteManifest deletes an image by digest (with every tag pointing at
// it), or only a tag.
func (r *Repos) DeleteManifest(ctx context.Context, repo registry.Repo, ref string) error {
	name := repo.Name
	if !registry.IsDigest(ref) {
		if _, err := r.store.GetTag(ctx, NS, name, ref); errors.Is(err, store.ErrNotFound) {
			return errdefs.ManifestUnknown(ref)
		} else if err != nil {
			return err
		}
		b := r.store.NewBatch()
		defer b.Close()
		if err := b.DeleteTag(NS, name, ref); err != nil {
			return err
		}
		return b.Commit()
	}
	err := r.reclaim.DeleteImage(ctx, store.LocalKey(name), ref)
	if errors.Is(err, store.ErrNotFound) {
		return errdefs.ManifestUnknown(ref)
	}
	if err != nil {
		return fmt.Errorf("delete manifest: %w", err)
	}
	r.log.Info("manifest deleted", zap.String("repo", name), zap.String("digest", ref))
	return nil
}

// Referrers lists the manifests of repo whose subject is d.
func (r *Repos) Referrers(ctx context.Context, repo registry.Repo, d registry.Digest) ([]registry.Descriptor, error) {
	raw, err := r.store.ListReferrers(ctx, store.LocalKey(repo.Name), d.String())
	if err != nil {
		return nil, err
	}
	out := make([]registry.Descriptor, 0, len(raw))
	for _, b := range raw {
		var desc registry.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return nil, fmt.Errorf("corrupt referrer entry: %w", err)
		}
		out = append(out, desc)
	}
	return out, nil
}
