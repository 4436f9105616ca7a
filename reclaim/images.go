package reclaim

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"berth/lifecycle"
	"berth/store"
)

// This file lists the images of a repository, local or cached, with their
// tags, sizes and times, for the admin API and lifecycle policies.

// ImageRepo names a repository whose images are managed: a local one or a
// cached (pull-through) one.
type ImageRepo struct {
	// Name is the name clients use: "private/app",
	// "docker-hub/library/alpine". It is only carried along, for reports.
	Name string
	// Key is the repository in the store.
	Key store.RepoKey
}

// LocalRepo is the ImageRepo of a local repository.
func LocalRepo(name string) ImageRepo { return ImageRepo{Name: name, Key: store.LocalKey(name)} }

// Cached reports whether ir is a cached repository.
func (ir ImageRepo) Cached() bool { return ir.Key.Cached() }

// ImageInfo describes one image (manifest) of a repository.
type ImageInfo struct {
	Digest string
	// Tags pointing at the image, sorted, and their records in the same
	// order (for a cached image: when and under which policy the upstream
	// last confirmed each).
	Tags         []string
	TagRecords   []TagRecord
	MediaType    string
	ArtifactType string
	// Size is the sum of the config and layer sizes the manifest lists;
	// for an index, the sum of its children's that are stored.
	Size         int64
	PushedAt     time.Time
	LastPulledAt time.Time
	// Children are the manifests an index lists.
	Children []string
	// Subject is the manifest this one refers to (a signature, an SBOM).
	Subject string
}

// Images lists the images of a repository, newest push first (then by
// digest). A repository without images, or one that does not exist, has
// none; checking that it exists is the caller's job.
func (r *Reclaimer) Images(ctx context.Context, ir ImageRepo) ([]ImageInfo, error) {
	recs, err := r.store.ListImages(ctx, ir.Key)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	tags, err := r.tagsByDigest(ctx, ir)
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	out := make([]ImageInfo, 0, len(recs))
	for d, rec := range recs {
		im := ImageInfo{Digest: d, PushedAt: rec.PushedAt, LastPulledAt: rec.LastPulledAt, TagRecords: tags[d]}
		for _, t := range im.TagRecords {
			im.Tags = append(im.Tags, t.Name)
		}
		if m, err := r.store.Sweep().RepoManifest(ctx, ir.Key, d); err == nil {
			im.MediaType = m.MediaType
			if doc, ok := readManifest(m.Body); ok {
				im.ArtifactType = doc.ReferrerType()
				for _, c := range doc.Manifests {
					im.Children = append(im.Children, c.Digest)
				}
				if doc.Subject != nil {
					im.Subject = doc.Subject.Digest
				}
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		im.Size = r.imageSize(ctx, d, sizes, 0)
		out = append(out, im)
	}
	slices.SortFunc(out, func(a, b ImageInfo) int {
		if c := b.PushedAt.Compare(a.PushedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	return out, nil
}

// TagRecord is a tag with its record.
type TagRecord struct {
	Name string
	store.Tag
}

// tagsByDigest maps digests to the repository's tags pointing at them.
func (r *Reclaimer) tagsByDigest(ctx context.Context, ir ImageRepo) (map[string][]TagRecord, error) {
	out := map[string][]TagRecord{}
	err := r.store.Sweep().Tags(ctx, ir.Key.Upstream, ir.Key.Name, func(tag string, t store.Tag) error {
		out[t.Digest] = append(out[t.Digest], TagRecord{Name: tag, Tag: t}) // in tag order
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// imageSize is the config and layer bytes of a manifest, or of the
// children of an index, memoized in sizes.
func (r *Reclaimer) imageSize(ctx context.Context, d string, sizes map[string]int64, depth int) int64 {
	if s, ok := sizes[d]; ok {
		return s
	}
	m, err := r.store.Sweep().Manifest(ctx, d)
	if err != nil || depth > 8 {
		return 0
	}
	doc, ok := readManifest(m.Body)
	if !ok {
		return 0
	}
	var n int64
	if doc.Config != nil {
		n += doc.Config.Size
	}
	for _, l := range doc.Layers {
		n += l.Size
	}
	for _, c := range doc.Manifests {
		n += r.imageSize(ctx, c.Digest, sizes, depth+1)
	}
	sizes[d] = n
	return n
}

// PlanLifecycle returns the images of a repository that p expires at now
// (see Plan). It changes nothing.
func (r *Reclaimer) PlanLifecycle(ctx context.Context, ir ImageRepo, p *lifecycle.Policy, now time.Time) ([]lifecycle.Result, error) {
	images, err := r.Images(ctx, ir)
	if err != nil {
		return nil, err
	}
	return Plan(p, images, now), nil
}

// RepoImages is a repository of the store with its number of images.
type RepoImages struct {
	ImageRepo
	Images int
}

// StoreRepositories lists every repository that has images in the store,
// local (Key.Upstream empty) and cached, sorted by upstream then name. Local
// repositories without images are not listed (see the store's
// ListRepositories). Name is left empty: only the caller knows the
// prefixes clients use.
func (r *Reclaimer) StoreRepositories(ctx context.Context) ([]RepoImages, error) {
	var out []RepoImages
	err := r.store.Sweep().Images(ctx, func(repo store.RepoKey, _ string) error {
		if n := len(out); n > 0 && out[n-1].Key == repo { // records come grouped by repository
			out[n-1].Images++
			return nil
		}
		out = append(out, RepoImages{ImageRepo: ImageRepo{Key: repo}, Images: 1})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b RepoImages) int {
		if c := strings.Compare(a.Key.Upstream, b.Key.Upstream); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Name, b.Key.Name)
	})
	return out, nil
}
