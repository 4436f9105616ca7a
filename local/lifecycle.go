package local

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth/lifecycle"
	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// This file is what the admin API and lifecycle policies do to the images
// of a repository, local or cached: list them with their tags, sizes and
// times, plan what a lifecycle policy expires, expire images, and delete a
// local repository.

// ImageRepo names a repository whose images are managed: a local one or a
// cached (pull-through) one.
type ImageRepo struct {
	// Name is the name clients use: "private/app",
	// "docker-hub/library/alpine". It is only carried along, for reports.
	Name string
	// Upstream is the upstream rule's name of a cached repository; empty
	// for a local one.
	Upstream string
	// Repo is the repository's name in the store: the local name, or the
	// name at the upstream ("library/alpine").
	Repo string
}

// LocalRepo is the ImageRepo of a local repository.
func LocalRepo(name string) ImageRepo { return ImageRepo{Name: name, Repo: name} }

// Cached reports whether ir is a cached repository.
func (ir ImageRepo) Cached() bool { return ir.Upstream != "" }

// key is the repository's key in image records and blob links.
func (ir ImageRepo) key() store.RepoKey {
	if ir.Cached() {
		return store.CachedKey(ir.Upstream, ir.Repo)
	}
	return store.LocalKey(ir.Repo)
}

// ns is the repository's tag namespace.
func (ir ImageRepo) ns() string {
	if ir.Cached() {
		return ir.Upstream
	}
	return NS
}

// ImageInfo describes one image (manifest) of a repository.
type ImageInfo struct {
	Digest string
	// Tags pointing at the image, sorted.
	Tags         []string
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
func (r *Repos) Images(ctx context.Context, ir ImageRepo) ([]ImageInfo, error) {
	recs, err := r.store.ListImages(ctx, ir.key())
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
		im := ImageInfo{Digest: d, Tags: tags[d], PushedAt: rec.PushedAt, LastPulledAt: rec.LastPulledAt}
		if m, err := r.store.GetManifest(ctx, d); err == nil {
			im.MediaType = m.MediaType
			var doc manifestDoc
			if json.Unmarshal(m.Body, &doc) == nil {
				im.ArtifactType = doc.artifactType()
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

// tagsByDigest maps digests to the repository's tags pointing at them.
func (r *Repos) tagsByDigest(ctx context.Context, ir ImageRepo) (map[string][]string, error) {
	names, err := r.store.ListTags(ctx, ir.ns(), ir.Repo)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, tag := range names {
		t, err := r.store.GetTag(ctx, ir.ns(), ir.Repo, tag)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[t.Digest] = append(out[t.Digest], tag) // ListTags is sorted
	}
	return out, nil
}

// imageSize is the config and layer bytes of a manifest, or of the
// children of an index, memoized in sizes.
func (r *Repos) imageSize(ctx context.Context, d string, sizes map[string]int64, depth int) int64 {
	if s, ok := sizes[d]; ok {
		return s
	}
	m, err := r.store.GetManifest(ctx, d)
	if err != nil || depth > 8 {
		return 0
	}
	var doc manifestDoc
	if json.Unmarshal(m.Body, &doc) != nil {
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
func (r *Repos) PlanLifecycle(ctx context.Context, ir ImageRepo, p *lifecycle.Policy, now time.Time) ([]lifecycle.Result, error) {
	images, err := r.Images(ctx, ir)
	if err != nil {
		return nil, err
	}
	return Plan(p, images, now), nil
}

// Plan returns the images that p expires at now, with ECR's semantics
// (package lifecycle), over the images of one repository. Images another
// image of the repository needs are not evaluated on their own: the
// children of an index and the referrers of a manifest (signatures, SBOMs)
// follow it. They expire, with the rule of the image that held them, once
// every image that holds them expires; until then they stay. So an
// untagged rule does not strip the platforms out of a tagged multi-arch
// image, and its signatures go with it.
//
// The result is ordered by rule priority, then push time newest first,
// then digest.
func Plan(p *lifecycle.Policy, images []ImageInfo, now time.Time) []lifecycle.Result {
	if p == nil || len(images) == 0 {
		return nil
	}
	byDigest := make(map[string]*ImageInfo, len(images))
	for i := range images {
		byDigest[images[i].Digest] = &images[i]
	}
	// holders[d]: the images of this repository that keep d (an index
	// listing it, or the subject it refers to).
	holders := map[string][]string{}
	for _, im := range images {
		for _, c := range im.Children {
			if _, ok := byDigest[c]; ok && c != im.Digest {
				holders[c] = append(holders[c], im.Digest)
			}
		}
		if _, ok := byDigest[im.Subject]; ok && im.Subject != im.Digest {
			holders[im.Digest] = append(holders[im.Digest], im.Subject)
		}
	}
	var roots []lifecycle.Image
	for _, im := range images {
		if len(holders[im.Digest]) == 0 {
			roots = append(roots, lifecycle.Image{Digest: im.Digest, Tags: im.Tags,
				PushedAt: im.PushedAt, LastPulledAt: im.LastPulledAt, Size: im.Size})
		}
	}
	out := lifecycle.Evaluate(p, roots, now)
	expired := map[string]int{} // digest -> index in out
	for i, res := range out {
		expired[res.Digest] = i
	}
	// Dependents go once all their holders go; repeat for nested ones (an
	// index's child's signature). Content addressing rules out cycles.
	for changed := true; changed; {
		changed = false
		for _, im := range images {
			hs := holders[im.Digest]
			if len(hs) == 0 {
				continue
			}
			if _, done := expired[im.Digest]; done {
				continue
			}
			if !allExpired(hs, expired) {
				continue
			}
			by := out[expired[hs[0]]]
			out = append(out, lifecycle.Result{
				Digest: im.Digest, Tags: slices.Clone(im.Tags), RulePriority: by.RulePriority,
				Reason:   fmt.Sprintf("rule %d: goes with %s, which holds it and expires", by.RulePriority, hs[0]),
				PushedAt: im.PushedAt, Size: im.Size,
			})
			expired[im.Digest] = len(out) - 1
			changed = true
		}
	}
	slices.SortStableFunc(out, func(a, b lifecycle.Result) int {
		if c := cmp.Compare(a.RulePriority, b.RulePriority); c != 0 {
			return c
		}
		if c := b.PushedAt.Compare(a.PushedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	return out
}

func allExpired(ds []string, expired map[string]int) bool {
	for _, d := range ds {
		if _, ok := expired[d]; !ok {
			return false
		}
	}
	return true
}

// ImageRef is one image of a repository.
type ImageRef struct {
	Repo   ImageRepo
	Digest string
}

// ExpireReport says what ExpireImages removed.
type ExpireReport struct {
	// ImagesExpired counts the images deleted, local and cached.
	ImagesExpired int `json:"imagesExpired"`
	// LocalImagesExpired counts the local ones among them: their blobs
	// are garbage collection's to reclaim.
	LocalImagesExpired int `json:"localImagesExpired"`
	// Cached content no remaining image needs is reclaimed at once.
	BlobsDeleted     int   `json:"blobsDeleted"`
	BytesFreed       int64 `json:"bytesFreed"`
	ManifestsDeleted int   `json:"manifestsDeleted"`
}

// ExpireImages deletes images. A local image is deleted the way a DELETE
// of its manifest by digest does it (the image record, every tag pointing
// at it and its referrer entry); garbage collection then reclaims its
// blobs. A cached image loses its record and tags, and since garbage
// collection never takes cached blobs, the blobs and manifests it alone
// needed are deleted here, as eviction does. Images already gone are
// skipped.
func (r *Repos) ExpireImages(ctx context.Context, refs []ImageRef) (ExpireReport, error) {
	var rep ExpireReport
	var cached []string
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if !ref.Repo.Cached() {
			err := r.DeleteManifest(ctx, registry.Repo{Name: ref.Repo.Repo}, ref.Digest)
			if isManifestUnknown(err) {
				continue
			}
			if err != nil {
				return rep, err
			}
			rep.ImagesExpired++
			rep.LocalImagesExpired++
			continue
		}
		key := ref.Repo.key()
		if _, err := r.store.GetImage(ctx, key, ref.Digest); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return rep, err
		}
		if err := r.dropCachedImage(ctx, key, ref.Digest); err != nil {
			return rep, err
		}
		rep.ImagesExpired++
		cached = append(cached, ref.Digest)
	}
	if len(cached) > 0 {
		if err := r.reclaimCached(ctx, cached, &rep); err != nil {
			return rep, err
		}
	}
	if rep.ImagesExpired > 0 {
		r.log.Info("images expired", zap.Int("images", rep.ImagesExpired), zap.Int("local", rep.LocalImagesExpired),
			zap.Int("blobsDeleted", rep.BlobsDeleted), zap.Int64("bytesFreed", rep.BytesFreed))
	}
	return rep, nil
}

// reclaimCached deletes the blobs and manifests of the given (dropped)
// cached images that no remaining image needs and no local repository
// links. Pushes wait meanwhile, as for garbage collection.
func (r *Repos) reclaimCached(ctx context.Context, digests []string, rep *ExpireReport) error {
	r.gc.Lock()
	defer r.gc.Unlock()
	candBlobs, candMans := map[string]bool{}, map[string]bool{}
	for _, d := range digests {
		blobs, mans := r.closure(ctx, d)
		for _, b := range blobs {
			candBlobs[b] = true
		}
		for _, m := range mans {
			candMans[m] = true
		}
	}
	sw := r.store.Sweep()
	needBlobs, needMans := map[string]bool{}, map[string]bool{}
	seen := map[string]bool{}
	err := sw.Images(ctx, func(_ store.RepoKey, digest string) error {
		if seen[digest] {
			return nil
		}
		seen[digest] = true
		blobs, mans := r.closure(ctx, digest)
		for _, b := range blobs {
			needBlobs[b] = true
		}
		for _, m := range mans {
			needMans[m] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	localBlobs := map[string]bool{}
	cachedLinks := map[string][]store.RepoKey{}
	err = sw.Links(ctx, func(repo store.RepoKey, digest string, linked bool) error {
		if !candBlobs[digest] {
			return nil
		}
		if repo.Cached() {
			cachedLinks[digest] = append(cachedLinks[digest], repo)
		} else if linked {
			localBlobs[digest] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range sortedKeys(candBlobs) {
		// A blob no cached repository links is not cached content.
		if needBlobs[b] || localBlobs[b] || len(cachedLinks[b]) == 0 {
			continue
		}
		info, err := r.store.StatBlob(ctx, b)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := r.store.DeleteBlob(ctx, b); err != nil {
			return err
		}
		if err := sw.DeleteLinks(ctx, b, cachedLinks[b]); err != nil {
			return err
		}
		rep.BlobsDeleted++
		rep.BytesFreed += info.Size
	}
	for _, m := range sortedKeys(candMans) {
		if needMans[m] {
			continue
		}
		if err := sw.DeleteManifest(ctx, m); err != nil {
			return err
		}
		rep.ManifestsDeleted++
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func isManifestUnknown(err error) bool {
	var re *registry.Error
	return errors.As(err, &re) && re.Code == registry.CodeManifestUnknown
}

// RepoImages is a repository of the store with its number of images.
type RepoImages struct {
	ImageRepo
	Images int
}

// StoreRepositories lists every repository that has images in the store,
// local (Upstream empty) and cached, sorted by upstream then name. Local
// repositories without images are not listed (see the store's
// ListRepositories). Name is left empty: only the caller knows the
// prefixes clients use.
func (r *Repos) StoreRepositories(ctx context.Context) ([]RepoImages, error) {
	counts := map[ImageRepo]int{}
	err := r.store.Sweep().Images(ctx, func(repo store.RepoKey, _ string) error {
		counts[ImageRepo{Upstream: repo.Upstream, Repo: repo.Name}]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]RepoImages, 0, len(counts))
	for ir, n := range counts {
		out = append(out, RepoImages{ImageRepo: ir, Images: n})
	}
	slices.SortFunc(out, func(a, b RepoImages) int {
		if c := strings.Compare(a.Upstream, b.Upstream); c != 0 {
			return c
		}
		return strings.Compare(a.Repo, b.Repo)
	})
	return out, nil
}

// ErrRepositoryNotEmpty is wrapped by DeleteRepository's refusal to delete
// a repository that still holds images.
var ErrRepositoryNotEmpty = errors.New("repository is not empty")

// DeleteRepository deletes a local repository. One that still holds images
// is refused (ErrRepositoryNotEmpty) unless force is set, in which case its
// images, tags, blob links and referrer entries go with it; garbage
// collection reclaims the blobs and manifests no other repository uses.
// Pushes wait while it runs. It returns the deleted record.
func (r *Repos) DeleteRepository(ctx context.Context, name string, force bool) (*store.Repository, error) {
	r.gc.Lock()
	defer r.gc.Unlock()
	rec, err := r.Repository(ctx, name)
	if err != nil {
		return nil, err
	}
	images, err := r.store.ListImages(ctx, store.LocalKey(name))
	if err != nil {
		return nil, err
	}
	if len(images) > 0 && !force {
		return nil, fmt.Errorf("%w: repository %s holds %d images; delete them first, or force the deletion", ErrRepositoryNotEmpty, name, len(images))
	}
	if err := r.store.PurgeRepository(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, registry.ErrNameUnknown(name)
		}
		return nil, err
	}
	r.log.Info("repository deleted", zap.String("repo", name), zap.Int("images", len(images)))
	return rec, nil
}
