package upstream

import (
	"errors"
	"testing"
)

func rtUpstreams(t *testing.T, rules ...Rule) []*Upstream {
	t.Helper()
	ups := make([]*Upstream, 0, len(rules))
	for _, r := range rules {
		u, err := New(r, nil, nil)
		if err != nil {
			t.Fatalf("New(%s): %v", r.Name, err)
		}
		ups = append(ups, u)
	}
	return ups
}

func TestRoute(t *testing.T) {
	full := NewRouter(rtUpstreams(t,
		Rule{Name: "hub", Registry: "docker.io", URL: "https://registry-1.docker.io", Prefix: "hub"},
		Rule{Name: "ghcr", Registry: "ghcr.io", Prefix: "ghcr", URL: "https://ghcr.io"},
		Rule{Name: "quay", Registry: "Quay.IO", URL: "https://quay.io"},
		Rule{Name: "local", URL: "http://127.0.0.1:5000", Default: true},
	))
	hubDefault := NewRouter(rtUpstreams(t,
		Rule{Name: "hub", URL: "https://index.docker.io", Default: true},
		Rule{Name: "ghcr", Prefix: "ghcr", URL: "https://ghcr.io"},
	))
	// A rule is Docker Hub by its registry even when its URL is a mirror,
	// and the registry is matched without regard to case.
	hubMirror := NewRouter(rtUpstreams(t,
		Rule{Name: "hub", Registry: "Docker.IO", URL: "https://mirror.example"},
	))
	// Names under a local prefix are local repositories, default or not.
	withLocal := NewRouter(rtUpstreams(t,
		Rule{Name: "ghcr", Registry: "ghcr.io", Prefix: "ghcr", URL: "https://ghcr.io"},
		Rule{Name: "hub", URL: "https://registry-1.docker.io", Default: true},
	), "mine")
	noDefault := NewRouter(rtUpstreams(t,
		Rule{Name: "ghcr", Registry: "ghcr.io", Prefix: "ghcr", URL: "https://ghcr.io"},
	))

	prefixIsHost := NewRouter(rtUpstreams(t,
		Rule{Name: "ghcr", Registry: "ghcr.io", URL: "https://ghcr.io"},
		Rule{Name: "byprefix", Prefix: "ghcr.io", URL: "https://other.example"},
	))
	dotless := NewRouter(rtUpstreams(t, Rule{Name: "in", Registry: "inhouse", URL: "http://10.0.0.1:5000"}))

	tests := []struct {
		name     string
		router   *Router
		ns, repo string
		wantUp   string
		wantRepo string
		wantErr  error
	}{
		{name: "ns picks registry", router: full, ns: "ghcr.io", repo: "owner/app", wantUp: "ghcr", wantRepo: "owner/app"},
		{name: "ns is case-insensitive", router: full, ns: "GHCR.io", repo: "owner/app", wantUp: "ghcr", wantRepo: "owner/app"},
		{name: "ns matches upper-case registry", router: full, ns: "quay.io", repo: "a/b", wantUp: "quay", wantRepo: "a/b"},
		{name: "ns keeps a prefix-looking first component", router: full, ns: "ghcr.io", repo: "hub/x", wantUp: "ghcr", wantRepo: "hub/x"},
		{name: "ns docker.io adds library", router: full, ns: "docker.io", repo: "nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "ns alias registry-1.docker.io", router: full, ns: "registry-1.docker.io", repo: "nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "ns alias index.docker.io", router: full, ns: "index.docker.io", repo: "bitnami/redis", wantUp: "hub", wantRepo: "bitnami/redis"},
		{name: "ns alias is case-insensitive", router: full, ns: "Index.Docker.IO", repo: "nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "unknown ns", router: full, ns: "gcr.io", repo: "distroless/static", wantErr: ErrUnknownNamespace},
		{name: "unknown ns does not fall back to default", router: hubDefault, ns: "ghcr.io", repo: "x/y", wantErr: ErrUnknownNamespace},
		{name: "hub aliases need a registry", router: hubDefault, ns: "docker.io", repo: "nginx", wantErr: ErrUnknownNamespace},
		{name: "prefix stripped", router: full, repo: "ghcr/owner/app", wantUp: "ghcr", wantRepo: "owner/app"},
		{name: "prefix stripped, one component left", router: full, repo: "ghcr/app", wantUp: "ghcr", wantRepo: "app"},
		{name: "hub prefix adds library to one component", router: full, repo: "hub/nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "hub prefix keeps two components", router: full, repo: "hub/bitnami/redis", wantUp: "hub", wantRepo: "bitnami/redis"},
		{name: "hub prefix keeps library", router: full, repo: "hub/library/nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "prefix alone is a name for the default", router: full, repo: "ghcr", wantUp: "local", wantRepo: "ghcr"},
		{name: "prefix must be a whole component", router: full, repo: "ghcrx/app", wantUp: "local", wantRepo: "ghcrx/app"},
		{name: "default rule", router: full, repo: "team/app", wantUp: "local", wantRepo: "team/app"},
		{name: "default non-hub has no library", router: full, repo: "app", wantUp: "local", wantRepo: "app"},
		{name: "hub default adds library", router: hubDefault, repo: "nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "hub default keeps two components", router: hubDefault, repo: "grafana/grafana", wantUp: "hub", wantRepo: "grafana/grafana"},
		{name: "prefix beats hub default", router: hubDefault, repo: "ghcr/app", wantUp: "ghcr", wantRepo: "app"},
		{name: "hub by upper-case registry", router: hubMirror, ns: "docker.io", repo: "alpine", wantUp: "hub", wantRepo: "library/alpine"},
		{name: "hub by upper-case registry, alias", router: hubMirror, ns: "registry-1.docker.io", repo: "alpine", wantUp: "hub", wantRepo: "library/alpine"},
		{name: "local prefix beats default", router: withLocal, repo: "mine/app", wantErr: ErrNoRoute},
		{name: "local prefix alone is for the default", router: withLocal, repo: "mine", wantUp: "hub", wantRepo: "library/mine"},
		{name: "upstream prefix with local prefixes", router: withLocal, repo: "ghcr/mine/app", wantUp: "ghcr", wantRepo: "mine/app"},
		{name: "ns ignores local prefixes", router: withLocal, ns: "ghcr.io", repo: "mine/app", wantUp: "ghcr", wantRepo: "mine/app"},
		{name: "default with local prefixes", router: withLocal, repo: "team/app", wantUp: "hub", wantRepo: "team/app"},
		{name: "no match", router: noDefault, repo: "team/app", wantErr: ErrNoRoute},
		{name: "no match, one component", router: noDefault, repo: "app", wantErr: ErrNoRoute},
		{name: "empty router", router: NewRouter(nil), repo: "app", wantErr: ErrNoRoute},
		{name: "host-named route", router: full, repo: "ghcr.io/owner/app", wantUp: "ghcr", wantRepo: "owner/app"},
		{name: "host-named route, upper-case registry", router: full, repo: "quay.io/a/b", wantUp: "quay", wantRepo: "a/b"},
		{name: "host-named route, hub alias adds library", router: full, repo: "docker.io/nginx", wantUp: "hub", wantRepo: "library/nginx"},
		{name: "host-named route by registry, not by URL", router: hubMirror, repo: "docker.io/team/app", wantUp: "hub", wantRepo: "team/app"},
		{name: "a URL's host names no rule", router: hubMirror, repo: "mirror.example/team/app", wantErr: ErrNoRoute},
		{name: "a URL's host is no ns", router: hubDefault, ns: "ghcr.io", repo: "x", wantErr: ErrUnknownNamespace},
		{name: "unknown host goes to the default", router: full, repo: "gcr.io/distroless/static", wantUp: "local", wantRepo: "gcr.io/distroless/static"},
		{name: "unknown host without default is local", router: noDefault, repo: "gcr.io/x/y", wantErr: ErrNoRoute},
		{name: "host-named route beats local prefix", router: withLocal, repo: "ghcr.io/mine/app", wantUp: "ghcr", wantRepo: "mine/app"},
		{name: "prefix beats host name", router: prefixIsHost, repo: "ghcr.io/o/a", wantUp: "byprefix", wantRepo: "o/a"},
		{name: "a host name must look like one", router: dotless, repo: "inhouse/team/app", wantErr: ErrNoRoute},
		{name: "a dotless registry is still an ns", router: dotless, ns: "inhouse", repo: "team/app", wantUp: "in", wantRepo: "team/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.router.Route(tt.ns, tt.repo)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Route(%q, %q) = %+v, %v; want %v", tt.ns, tt.repo, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Route(%q, %q): %v", tt.ns, tt.repo, err)
			}
			if got.Upstream.Rule.Name != tt.wantUp || got.Repo != tt.wantRepo {
				t.Errorf("Route(%q, %q) = %s %q, want %s %q", tt.ns, tt.repo, got.Upstream.Rule.Name, got.Repo, tt.wantUp, tt.wantRepo)
			}
		})
	}
}

func TestRouterUpstreamsInOrder(t *testing.T) {
	ups := rtUpstreams(t,
		Rule{Name: "b", Prefix: "b", URL: "https://b.example"},
		Rule{Name: "a", Prefix: "a", URL: "https://a.example"},
	)
	got := NewRouter(ups).Upstreams()
	if len(got) != 2 || got[0].Rule.Name != "b" || got[1].Rule.Name != "a" {
		t.Fatalf("Upstreams() out of configuration order: %v", got)
	}
}
