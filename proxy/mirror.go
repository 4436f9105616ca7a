package proxy

import (
	"context"
	"errors"
	"net/http"
	"sort"

	"berth/local"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// Mirror is the backend the registry serves: it sends each request to the
// pull-through cache or to the local repositories, by the router's rules.
type Mirror struct {
	Proxy *Proxy
	Local *local.Repos
	store *store.Store
}

// NewMirror joins the pull-through proxy and the local repositories.
func NewMirror(p *Proxy, l *local.Repos) *Mirror {
	return &Mirror{Proxy: p, Local: l, store: p.store}
}

// isLocal routes a repository: false for a cached one, true for a local
// one, or the error for a name nothing serves.
func (m *Mirror) isLocal(repo registry.Repo) (bool, error) {
	_, err := m.Proxy.Router().Route(repo.NS, repo.Name)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, upstream.ErrNoRoute):
		return true, nil
	}
	_, err = m.Proxy.route(repo) // the client's error for this route
	return false, err
}

// writable routes a write: local repositories only.
func (m *Mirror) writable(repo registry.Repo) error {
	isLocal, err := m.isLocal(repo)
	if err != nil {
		return err
	}
	if !isLocal {
		t, _ := m.Proxy.route(repo)
		return registry.Errorf(http.StatusMethodNotAllowed, registry.CodeUnsupported,
			"repository %s is a pull-through cache of upstream %s and cannot be written; push to a local repository",
			repo.Name, t.Upstream.Rule.Name)
	}
	return nil
}

func (m *Mirror) GetManifest(ctx context.Context, req registry.ManifestRequest) (*registry.Manifest, error) {
	if l, err := m.isLocal(req.Repo); err != nil {
		return nil, err
	} else if l {
		return m.Local.GetManifest(ctx, req)
	}
	return m.Proxy.GetManifest(ctx, req)
}

func (m *Mirror) GetBlob(ctx context.Context, req registry.BlobRequest) (registry.Blob, error) {
	if l, err := m.isLocal(req.Repo); err != nil {
		return nil, err
	} else if l {
		return m.Local.GetBlob(ctx, req)
	}
	return m.Proxy.GetBlob(ctx, req)
}

func (m *Mirror) ListTags(ctx context.Context, repo registry.Repo) ([]string, error) {
	if l, err := m.isLocal(repo); err != nil {
		return nil, err
	} else if l {
		return m.Local.ListTags(ctx, repo)
	}
	return m.Proxy.ListTags(ctx, repo)
}

func (m *Mirror) Referrers(ctx context.Context, repo registry.Repo, d registry.Digest) ([]registry.Descriptor, error) {
	if l, err := m.isLocal(repo); err != nil {
		return nil, err
	} else if l {
		return m.Local.Referrers(ctx, repo, d)
	}
	return m.Proxy.Referrers(ctx, repo, d)
}

func (m *Mirror) StartUpload(ctx context.Context, repo registry.Repo) (registry.Upload, error) {
	if err := m.writable(repo); err != nil {
		return nil, err
	}
	if m.Proxy.opts.Reserve != nil {
		if err := m.Proxy.opts.Reserve(ctx, 0); err != nil {
			return nil, err
		}
	}
	return m.Local.StartUpload(ctx, repo)
}

func (m *Mirror) GetUpload(ctx context.Context, repo registry.Repo, id string) (registry.Upload, error) {
	if err := m.writable(repo); err != nil {
		return nil, err
	}
	return m.Local.GetUpload(ctx, repo, id)
}

// MountBlob links a blob into a local repository from from: a local
// repository that holds it, a cached repository whose blob is stored, or
// (from == "") any stored blob.
func (m *Mirror) MountBlob(ctx context.Context, repo registry.Repo, from string, d registry.Digest) error {
	if err := m.writable(repo); err != nil {
		return err
	}
	publicOnly := true
	if from != "" {
		src := registry.Repo{Name: from}
		isLocal, err := m.isLocal(src)
		if err != nil {
			return registry.ErrBlobUnknown(d.String())
		}
		if isLocal {
			ok, err := m.Local.Visible(ctx, from, d)
			if err != nil {
				return err
			}
			if !ok {
				return registry.ErrBlobUnknown(d.String())
			}
			publicOnly = false
		}
	}
	return m.Local.MountBlob(ctx, repo.Name, d, publicOnly)
}

func (m *Mirror) PutManifest(ctx context.Context, req registry.ManifestPut) (registry.PutResult, error) {
	if err := m.writable(req.Repo); err != nil {
		return registry.PutResult{}, err
	}
	return m.Local.PutManifest(ctx, req)
}

func (m *Mirror) DeleteManifest(ctx context.Context, repo registry.Repo, ref string) error {
	if err := m.writable(repo); err != nil {
		return err
	}
	return m.Local.DeleteManifest(ctx, repo, ref)
}

func (m *Mirror) DeleteBlob(ctx context.Context, repo registry.Repo, d registry.Digest) error {
	if err := m.writable(repo); err != nil {
		return err
	}
	return m.Local.DeleteBlob(ctx, repo, d)
}

// Catalog lists local repositories and the cached ones, the latter by the
// name a client uses (with the rule's prefix).
func (m *Mirror) Catalog(ctx context.Context) ([]string, error) {
	names, err := m.store.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	prefixes := map[string]string{}
	for _, u := range m.Proxy.Router().Upstreams() {
		prefixes[u.Rule.Name] = u.Rule.Prefix
	}
	err = m.store.Sweep().Images(ctx, func(repo store.RepoKey, _ string) error {
		if !repo.Cached() {
			return nil
		}
		name := repo.Name
		if p := prefixes[repo.Upstream]; p != "" {
			name = p + "/" + name
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}
