package auth

import (
	"berth/internal/wildcard"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// Principal is who makes a request. The zero Principal is anonymous.
type Principal struct {
	Name      string
	Groups    []string
	Anonymous bool
}

// Authenticated reports whether p is a logged-in user.
func (p Principal) Authenticated() bool { return !p.Anonymous && p.Name != "" }

// Request is one action on one repository.
type Request struct {
	Principal   Principal
	SourceIP    netip.Addr
	Repo        string
	Action      string // pull, push, delete or list
	RepoIsLocal bool   // a local (pushed-to) repository, not a proxied one
}

// Decision is the answer to a Request; Reason is for logs and audit.
type Decision struct {
	Allowed bool
	Reason  string
}

// DefaultGrants are the actions granted when no policy statement applies.
type DefaultGrants struct {
	// Cached are the actions on proxied (pull-through cached) repositories.
	Cached []string
	// Local are the actions on local (pushed-to) repositories.
	Local []string
	// Catalog grants reading /v2/_catalog (registry:catalog:*).
	Catalog bool
}

// Defaults hold the default grants for anonymous clients and for
// authenticated users.
type Defaults struct {
	Anonymous     DefaultGrants
	Authenticated DefaultGrants
}

// DefaultDefaults are Berth's defaults: anonymous clients may pull cached
// repositories; authenticated users may pull and list cached repositories,
// pull, push and list local ones, and read the catalog. Delete is granted
// only by policy.
func DefaultDefaults() Defaults {
	return Defaults{
		Anonymous: DefaultGrants{Cached: []string{ActionPull}},
		Authenticated: DefaultGrants{
			Cached:  []string{ActionPull, ActionList},
			Local:   []string{ActionPull, ActionPush, ActionList},
			Catalog: true,
		},
	}
}

// EvaluatorConfig configures an Evaluator.
type EvaluatorConfig struct {
	// Repositories maps a repository name to its policy.
	Repositories map[string]*Policy
	// Namespaces maps a name pattern ("private/*", "docker-hub/*", "*";
	// "*" matches any run of characters, '/' included) to a policy that
	// applies to every repository it matches.
	Namespaces map[string]*Policy
	// Defaults; nil means DefaultDefaults().
	Defaults *Defaults
}

// Evaluator decides requests with ECR's rules: an explicit Deny in any
// applicable statement wins, otherwise an Allow in any applicable statement
// grants, otherwise only the defaults grant. It is safe for concurrent use.
type Evaluator struct {
	log      *zap.Logger
	defaults Defaults
	nss      []nsPolicy // sorted by pattern; replaced whole under mu

	mu    sync.RWMutex
	repos map[string]*Policy
}

type nsPolicy struct {
	pattern string
	policy  *Policy
}

// NewEvaluator checks cfg and builds an Evaluator.
func NewEvaluator(cfg EvaluatorConfig, log *zap.Logger) (*Evaluator, error) {
	if log == nil {
		log = zap.NewNop()
	}
	e := &Evaluator{log: log, defaults: DefaultDefaults(), repos: map[string]*Policy{}}
	if cfg.Defaults != nil {
		e.defaults = *cfg.Defaults
	}
	for _, g := range []struct {
		name string
		acts []string
	}{
		{"anonymous.cached", e.defaults.Anonymous.Cached},
		{"anonymous.local", e.defaults.Anonymous.Local},
		{"authenticated.cached", e.defaults.Authenticated.Cached},
		{"authenticated.local", e.defaults.Authenticated.Local},
	} {
		for _, a := range g.acts {
			if !isAction(a) {
				return nil, fmt.Errorf("defaults.%s: unknown action %q; want pull, push, delete or list", g.name, a)
			}
		}
	}
	for repo, p := range cfg.Repositories {
		if repo == "" || strings.Contains(repo, "*") || p == nil {
			return nil, fmt.Errorf("repositories: %q: want a repository name without '*' and a policy", repo)
		}
		e.repos[repo] = p
	}
	for pat, p := range cfg.Namespaces {
		if pat == "" || p == nil {
			return nil, fmt.Errorf("namespaces: %q: want a non-empty pattern and a policy", pat)
		}
		e.nss = append(e.nss, nsPolicy{pattern: pat, policy: p})
	}
	slices.SortFunc(e.nss, func(a, b nsPolicy) int { return strings.Compare(a.pattern, b.pattern) })
	return e, nil
}

// SetPolicy sets the policy of a repository, or of a name pattern when
// name contains '*'; a nil policy deletes it. It takes effect for the next
// request.
func (e *Evaluator) SetPolicy(name string, p *Policy) {
	if !strings.Contains(name, "*") {
		e.SetRepositoryPolicy(name, p)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	nss := slices.DeleteFunc(slices.Clone(e.nss), func(n nsPolicy) bool { return n.pattern == name })
	if p != nil {
		nss = append(nss, nsPolicy{pattern: name, policy: p})
		slices.SortFunc(nss, func(a, b nsPolicy) int { return strings.Compare(a.pattern, b.pattern) })
	}
	e.nss = nss
}

// SetRepositoryPolicy sets repo's own policy, as ECR's SetRepositoryPolicy
// does; a nil policy deletes it.
func (e *Evaluator) SetRepositoryPolicy(repo string, p *Policy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p == nil {
		delete(e.repos, repo)
		return
	}
	e.repos[repo] = p
}

// Authorize decides one request.
func (e *Evaluator) Authorize(ctx context.Context, req Request) Decision {
	if !isAction(req.Action) {
		return Decision{Reason: fmt.Sprintf("unknown action %q", req.Action)}
	}
	if req.Repo == "" {
		return Decision{Reason: "no repository named"}
	}
	g := e.grants(req.Principal)
	byDefault := slices.Contains(g.Cached, req.Action)
	kind := "cached"
	if req.RepoIsLocal {
		byDefault, kind = slices.Contains(g.Local, req.Action), "local"
	}
	d := e.decide(req.Principal, req.SourceIP, req.Repo, req.Action, byDefault, kind+" repositories")
	e.log.Debug("authorize", zap.String("principal", req.Principal.Name),
		zap.Bool("anonymous", !req.Principal.Authenticated()), zap.Stringer("ip", req.SourceIP),
		zap.String("repo", req.Repo), zap.String("action", req.Action),
		zap.Bool("allowed", d.Allowed), zap.String("reason", d.Reason))
	return d
}

// AuthorizeCatalog decides reading /v2/_catalog: "list" on the empty
// repository name, to which only "*" namespace policies apply.
func (e *Evaluator) AuthorizeCatalog(ctx context.Context, p Principal, ip netip.Addr) Decision {
	return e.decide(p, ip, "", ActionList, e.grants(p).Catalog, "the catalog")
}

// Grant implements Authorizer for the token handler: the actions of the
// requested scope that p may perform. A repository's "*" is granted when
// pull, push and delete all are; otherwise the allowed ones among them are.
// registry:catalog:* follows AuthorizeCatalog. Other resources get nothing.
func (e *Evaluator) Grant(ctx context.Context, p Principal, ip netip.Addr, want Access, local bool) ([]string, error) {
	switch {
	case want.Type == TypeRegistry && want.Name == "catalog":
		if slices.Contains(want.Actions, "*") && e.AuthorizeCatalog(ctx, p, ip).Allowed {
			return []string{"*"}, nil
		}
		return nil, nil
	case want.Type != TypeRepository:
		return nil, nil
	}
	allowed := func(action string) bool {
		return e.Authorize(ctx, Request{Principal: p, SourceIP: ip, Repo: want.Name, Action: action, RepoIsLocal: local}).Allowed
	}
	var out []string
	for _, a := range want.Actions {
		switch a {
		case ActionPull, ActionPush, ActionDelete:
			if allowed(a) {
				out = appendUnique(out, a)
			}
		case "*":
			all := []string{ActionPull, ActionPush, ActionDelete}
			var some []string
			for _, x := range all {
				if allowed(x) {
					some = append(some, x)
				}
			}
			if len(some) == len(all) {
				out = appendUnique(out, "*")
				continue
			}
			for _, x := range some {
				out = appendUnique(out, x)
			}
		}
	}
	return out, nil
}

func (e *Evaluator) grants(p Principal) DefaultGrants {
	if p.Authenticated() {
		return e.defaults.Authenticated
	}
	return e.defaults.Anonymous
}

// decide applies the policies that apply to repo, then the default.
func (e *Evaluator) decide(p Principal, ip netip.Addr, repo, action string, byDefault bool, what string) Decision {
	ip = ip.Unmap().WithZone("")
	e.mu.RLock()
	own := e.repos[repo]
	nss := e.nss
	e.mu.RUnlock()
	type applicable struct {
		where  string
		policy *Policy
	}
	var pols []applicable
	if own != nil {
		pols = append(pols, applicable{"policy of repository " + repo, own})
	}
	for _, ns := range nss {
		if matchPattern(ns.pattern, repo) {
			pols = append(pols, applicable{fmt.Sprintf("policy of namespace %q", ns.pattern), ns.policy})
		}
	}
	var allow string
	for _, ap := range pols {
		for i, st := range ap.policy.Statements {
			if !st.applies(p, ip, action) {
				continue
			}
			name := fmt.Sprintf("statement %d", i)
			if st.Sid != "" {
				name = fmt.Sprintf("statement %q", st.Sid)
			}
			if st.Effect == Deny {
				return Decision{Reason: fmt.Sprintf("%s denied by %s in the %s", action, name, ap.where)}
			}
			if allow == "" {
				allow = fmt.Sprintf("%s allowed by %s in the %s", action, name, ap.where)
			}
		}
	}
	if allow != "" {
		return Decision{Allowed: true, Reason: allow}
	}
	who := "anonymous clients"
	if p.Authenticated() {
		who = "authenticated users"
	}
	if byDefault {
		return Decision{Allowed: true, Reason: fmt.Sprintf("%s on %s allowed to %s by default", action, what, who)}
	}
	return Decision{Reason: fmt.Sprintf("no policy allows %s and the defaults do not grant it on %s to %s", action, what, who)}
}

// applies reports whether st covers action by p from ip.
func (st *Statement) applies(p Principal, ip netip.Addr, action string) bool {
	if !slices.Contains(st.Actions, action) || !st.Principals.matches(p) {
		return false
	}
	if len(st.SourceIP) > 0 && !(ip.IsValid() && containsAddr(st.SourceIP, ip)) {
		return false
	}
	// As in IAM, a negated condition holds when the address is unknown.
	if len(st.NotSourceIP) > 0 && ip.IsValid() && containsAddr(st.NotSourceIP, ip) {
		return false
	}
	return true
}

func containsAddr(pfxs []netip.Prefix, ip netip.Addr) bool {
	for _, p := range pfxs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (ps *Principals) matches(p Principal) bool {
	switch {
	case ps.Everyone:
		return true
	case !p.Authenticated():
		return false
	case ps.AnyUser, slices.Contains(ps.Users, p.Name):
		return true
	}
	for _, g := range p.Groups {
		if slices.Contains(ps.Groups, g) {
			return true
		}
	}
	return false
}

// matchPattern matches s against a pattern where '*' stands for any run of
// characters, '/' included, and every other character for itself.
func matchPattern(pattern, s string) bool { return wildcard.Match(pattern, s) }

// PrincipalKey is the rate-limit key of a client: "user:<name>" for an
// authenticated user, "ip:<addr>" otherwise. A port on ip is dropped.
func PrincipalKey(p Principal, ip string) string {
	if p.Authenticated() {
		return "user:" + p.Name
	}
	if ap, err := netip.ParseAddrPort(ip); err == nil {
		return "ip:" + ap.Addr().Unmap().String()
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		return "ip:" + a.Unmap().String()
	}
	return "ip:" + ip
}
