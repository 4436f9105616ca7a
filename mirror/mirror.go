// Package mirror is the backend the registry serves: the composition of the
// pull-through cache (proxy) and the local repositories (local). It
// resolves each request's repository once (registry.Resolver) and sends the
// request to whichever of the two the target names.
package mirror

import (
	"context"
	"sort"

	"berth/errdefs"
	"berth/local"
	"berth/proxy"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// Options configures a Mirror.
type Options struct {
	// Reserve, when set, is asked for room before an upload starts and
	// for the upload's bytes as they arrive.
	Reserve func(ctx context.Context, size int64) error
	// MaxUploadBytes, when set, gives the cap on one upload in force
	// (0: none).
	MaxUploadBytes func() int64
	// MaxOpenUploads, when set, gives the cap in force on the upload
	// sessions one client holds open (0: none); see openUploads.
	MaxOpenUploads func() int
}

// Mirror joins the pull-through proxy and the local repositories.
type Mirror struct {
	proxy *proxy.Proxy
	local *local.Repos
	store *store.Store
	opts  Options
	open  openUploads
}

// New joins the pull-through proxy and the local repositories over one
// store.
func New(p *proxy.Proxy, l *local.Repos, st *store.Store, opts Options) *Mirror {
	return &Mirror{proxy: p, local: l, store: st, opts: opts}
}

// Resolve implements registry.Resolver: the router's rules decide whether a
// name is cached (and from which upstream) or local.
func (m *Mirror) Resolve(repo registry.Repo) (registry.Target, error) {
	return m.proxy.Resolve(repo)
}

// writable refuses writes to cached repositories.
func writable(repo registry.Repo) error {
	if t := repo.Target; !t.Local() {
		return errdefs.New(errdefs.ErrNotWritable,
			"repository %s is a pull-through cache of upstream %s and cannot be written; push to a local repository",
			repo.Name, t.Upstream)
	}
	return nil
}

func (m *Mirror) GetManifest(ctx context.Context, req registry.ManifestRequest) (*registry.Manifest, error) {
	if req.Repo.Target.Local() {
		return m.local.GetManifest(ctx, req)
	}
	return m.proxy.GetManifest(ctx, req)
}

func (m *Mirror) GetBlob(ctx context.Context, req registry.BlobRequest) (registry.Blob, error) {
	if req.Repo.Target.Local() {
		return m.local.GetBlob(ctx, req)
	}
	return m.proxy.GetBlob(ctx, req)
}

func (m *Mirror) ListTags(ctx context.Context, repo registry.Repo) ([]string, error) {
	if repo.Target.Local() {
		return m.local.ListTags(ctx, repo)
	}
	return m.proxy.ListTags(ctx, repo)
}

// ListTagsPage reads a page of a local repository's tags from the store;
// a cached repository's list comes from its upstream whole, and is cut.
func (m *Mirror) ListTagsPage(ctx context.Context, repo registry.Repo, last string, n int) ([]string, bool, error) {
	if repo.Target.Local() {
		return m.local.ListTagsPage(ctx, repo, last, n)
	}
	tags, err := m.proxy.ListTags(ctx, repo)
	if err != nil {
		return nil, false, err
	}
	page, more := registry.Paginate(tags, n, last)
	return page, more, nil
}

func (m *Mirror) Referrers(ctx context.Context, repo registry.Repo, d registry.Digest) ([]registry.Descriptor, error) {
	if repo.Target.Local() {
		return m.local.Referrers(ctx, repo, d)
	}
	return m.proxy.Referrers(ctx, repo, d)
}

func (m *Mirror) StartUpload(ctx context.Context, repo registry.Repo) (registry.Upload, error) {
	if err := writable(repo); err != nil {
		return nil, err
	}
	if m.opts.Reserve != nil {
		if err := m.opts.Reserve(ctx, 0); err != nil {
			return nil, err
		}
	}
	u, err := m.startCounted(ctx, func() (registry.Upload, error) { return m.local.StartUpload(ctx, repo) })
	if err != nil {
		return nil, err
	}
	return m.charged(u), nil
}

func (m *Mirror) GetUpload(ctx context.Context, repo registry.Repo, id string) (registry.Upload, error) {
	if err := writable(repo); err != nil {
		return nil, err
	}
	u, err := m.local.GetUpload(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	return m.charged(u), nil
}

// MountBlob links a blob into a local repository from from: a local
// repository or a cached one that sees it (store.Visible). A mount without
// a source mounts nothing: the client uploads instead.
func (m *Mirror) MountBlob(ctx context.Context, repo registry.Repo, from registry.Repo, d registry.Digest) error {
	if err := writable(repo); err != nil {
		return err
	}
	src := from.Target
	if from.Name == "" || src.Name == "" {
		return errdefs.BlobUnknown(d.String())
	}
	key := store.LocalKey(src.Name)
	if !src.Local() {
		key = store.CachedKey(src.Upstream, src.Remote)
	}
	return m.local.MountBlob(ctx, repo.Target.Name, d, key)
}

func (m *Mirror) PutManifest(ctx context.Context, req registry.ManifestPut) (registry.PutResult, error) {
	if err := writable(req.Repo); err != nil {
		return registry.PutResult{}, err
	}
	return m.local.PutManifest(ctx, req)
}

func (m *Mirror) DeleteManifest(ctx context.Context, repo registry.Repo, ref string) error {
	if err := writable(repo); err != nil {
		return err
	}
	return m.local.DeleteManifest(ctx, repo, ref)
}

func (m *Mirror) DeleteBlob(ctx context.Context, repo registry.Repo, d registry.Digest) error {
	if err := writable(repo); err != nil {
		return err
	}
	return m.local.DeleteBlob(ctx, repo, d)
}

// Catalog lists local repositories and the cached ones, each by its
// canonical name. A cached repository of a rule no longer configured is
// named by the rule's name.
func (m *Mirror) Catalog(ctx context.Context) ([]string, error) {
	names, err := m.store.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	router := m.proxy.Router()
	err = m.store.Sweep().Images(ctx, func(repo store.RepoKey, _ string) error {
		if !repo.Cached() {
			return nil
		}
		rule := upstream.Rule{Name: repo.Upstream}
		if u := router.Upstream(repo.Upstream); u != nil {
			rule = u.Rule
		}
		if c := upstream.CanonicalName(rule, repo.Name); !seen[c] {
			seen[c] = true
			names = append(names, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}
