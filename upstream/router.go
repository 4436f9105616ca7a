package upstream

import (
	"errors"
	"strings"
)

// ErrNoRoute means no rule claims the name: it is a local repository.
var ErrNoRoute = errors.New("no upstream rule matches")

// ErrUnknownNamespace means ?ns= named a registry no rule mirrors.
var ErrUnknownNamespace = errors.New("registry is not mirrored here")

// Target is where a request goes upstream.
type Target struct {
	Upstream *Upstream
	// Repo is the repository name at the upstream.
	Repo string
}

// Canonical is the target's canonical repository name (see CanonicalName).
func (t Target) Canonical() string { return CanonicalName(t.Upstream.Rule, t.Repo) }

// CanonicalName is the one name of repository repo of rule's upstream,
// whichever way a client reached it (ns, prefix or the default rule):
// "<prefix>/<repo>", or "<rule name>/<repo>" for a rule without a prefix.
// Policies, tokens, the catalog, pinning, lifecycle and audit use it.
func CanonicalName(rule Rule, repo string) string {
	p := rule.Prefix
	if p == "" {
		p = rule.Name
	}
	return p + "/" + repo
}

// Router picks the upstream for a request. Precedence:
//  1. ?ns=<registry> picks the rule with that registry, name unchanged; an
//     ns that no rule has is ErrUnknownNamespace (404, so containerd falls
//     back to its next host).
//  2. A first path component equal to a rule's prefix picks that rule, with
//     the prefix stripped.
//  3. A first path component that is a host name (it has a dot or a colon,
//     or is localhost, as in an image reference) and names a rule as an ns
//     would picks that rule, with the host stripped: /v2/ghcr.io/owner/app
//     is /v2/owner/app?ns=ghcr.io.
//  4. A first path component equal to a local prefix makes the name a local
//     repository (ErrNoRoute).
//  5. The default rule takes every other name.
//  6. Without a default rule, every other name is a local repository.
//
// A rule is named, as an ns or a host, by its registry only (for Docker Hub
// also docker.io, registry-1.docker.io and index.docker.io), never by its
// URL's host: a registry no rule lists is never asked.
// On Docker Hub, single-component names get library/.
type Router struct {
	byRegistry map[string]*Upstream
	byPrefix   map[string]*Upstream
	byName     map[string]*Upstream
	def        *Upstream
	all        []*Upstream
	local      map[string]bool
}

// NewRouter builds a router over upstreams. Names under localPrefixes are
// local repositories even when a default rule exists.
func NewRouter(ups []*Upstream, localPrefixes ...string) *Router {
	r := &Router{byRegistry: map[string]*Upstream{}, byPrefix: map[string]*Upstream{},
		byName: map[string]*Upstream{}, all: ups, local: map[string]bool{}}
	for _, p := range localPrefixes {
		r.local[p] = true
	}
	for _, u := range ups {
		r.byName[u.Rule.Name] = u
		if u.Rule.Registry != "" {
			r.byRegistry[strings.ToLower(u.Rule.Registry)] = u
			if u.hub {
				for _, alias := range []string{"docker.io", "registry-1.docker.io", "index.docker.io"} {
					if _, taken := r.byRegistry[alias]; !taken {
						r.byRegistry[alias] = u
					}
				}
			}
		}
		if u.Rule.Prefix != "" {
			r.byPrefix[u.Rule.Prefix] = u
		}
		if u.Rule.Default {
			r.def = u
		}
	}
	return r
}

// Fixed returns r whenever asked: routing rules that never change, for a
// proxy that is not under a live configuration (tests, tools).
func Fixed(r *Router) func() *Router { return func() *Router { return r } }

// Upstreams returns every upstream, in configuration order.
func (r *Router) Upstreams() []*Upstream { return r.all }

// Upstream returns the upstream of the rule named name, or nil.
func (r *Router) Upstream(name string) *Upstream { return r.byName[name] }

// RouteCanonical resolves a canonical name (CanonicalName), as operators
// write names in pinning, policies and the admin API: a first component
// that is a rule's prefix, or the name of a rule without a prefix, picks
// that rule; anything else routes like a client's name without ns.
func (r *Router) RouteCanonical(name string) (Target, error) {
	if first, rest, ok := strings.Cut(name, "/"); ok {
		if u, ok := r.byName[first]; ok && u.Rule.Prefix == "" && r.byPrefix[first] == nil {
			return Target{Upstream: u, Repo: u.normalize(rest)}, nil
		}
	}
	return r.Route("", name)
}

// Route resolves a repository name and optional ns to an upstream target.
func (r *Router) Route(ns, name string) (Target, error) {
	if ns != "" {
		u, ok := r.byRegistry[strings.ToLower(ns)]
		if !ok {
			return Target{}, ErrUnknownNamespace
		}
		return Target{Upstream: u, Repo: u.normalize(name)}, nil
	}
	if first, rest, ok := strings.Cut(name, "/"); ok {
		if u, ok := r.byPrefix[first]; ok {
			return Target{Upstream: u, Repo: u.normalize(rest)}, nil
		}
		if u, ok := r.byRegistry[strings.ToLower(first)]; ok && IsHostName(first) {
			return Target{Upstream: u, Repo: u.normalize(rest)}, nil
		}
		if r.local[first] {
			return Target{}, ErrNoRoute
		}
	}
	if r.def != nil {
		return Target{Upstream: r.def, Repo: r.def.normalize(name)}, nil
	}
	return Target{}, ErrNoRoute
}

// IsHostName says whether the first component of an image reference is a
// registry's host rather than part of the repository's name.
func IsHostName(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

func (u *Upstream) normalize(name string) string {
	if u.hub && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}
