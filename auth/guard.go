package auth

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"berth/registry"

	"go.uber.org/zap"
)

// Guard is the registry's registry.Guard: it authenticates a request by
// bearer token, Basic credentials (a password or a token Berth issued) or
// as anonymous, and authorizes its action with the Evaluator.
type Guard struct {
	Users     Authenticator
	Issuer    *Issuer
	Evaluator *Evaluator
	// Realm is the token endpoint's URL; empty derives it from the
	// request's host and scheme.
	Realm string
	Log   *zap.Logger

	mu    sync.Mutex
	basic map[[32]byte]basicEntry // recent good Basic credentials
}

type basicEntry struct {
	p       Principal
	binding string // the user's credential when it was checked
	expires time.Time
}

// basicTTL is how long good Basic credentials skip bcrypt.
const basicTTL = time.Minute

// Check implements registry.Guard.
func (g *Guard) Check(r *http.Request, req registry.AccessRequest) (string, error) {
	ip := remoteIP(r)
	p, claims, err := g.authenticate(r)
	if err != nil {
		return "", err
	}
	if req.Action == "" { // GET /v2/: only says whether the client is logged in
		if p.Anonymous {
			return "", g.challenge(r, nil, "authentication required")
		}
		return p.Name, nil
	}
	// Everything is decided on the canonical names the registry resolved:
	// a token names the repository it was granted for, and is good for no
	// other route to another repository (an ns or prefix that resolves
	// elsewhere needs a grant of its own).
	name := req.Route.Repo.Name
	target := req.Route.Repo.Target
	src := req.MountFrom.Target
	var allowed, noMount bool
	switch {
	case claims != nil && req.Action == registry.ActionList:
		allowed = claims.Allows(TypeRegistry, "catalog", "*")
	case claims != nil:
		allowed = claims.Allows(TypeRepository, target.Name, req.Action)
		noMount = allowed && req.MountFrom.Name != "" &&
			(src.Name == "" || !claims.Allows(TypeRepository, src.Name, ActionPull))
	case req.Action == registry.ActionList:
		allowed = g.Evaluator.AuthorizeCatalog(r.Context(), p, ip).Allowed
	default:
		d := g.Evaluator.Authorize(r.Context(), Request{Principal: p, SourceIP: ip, Repo: target.Name, Action: req.Action, RepoIsLocal: target.Local()})
		allowed = d.Allowed
		if allowed && req.MountFrom.Name != "" {
			noMount = src.Name == "" ||
				!g.Evaluator.Authorize(r.Context(), Request{Principal: p, SourceIP: ip, Repo: src.Name, Action: ActionPull, RepoIsLocal: src.Local()}).Allowed
		}
	}
	if allowed && noMount {
		// The push is allowed, the mount's source is not readable: the
		// registry answers with an ordinary upload session.
		return p.Name, registry.ErrNoMount
	}
	if allowed {
		return p.Name, nil
	}
	scope := []Access{{Type: TypeRepository, Name: name, Actions: []string{req.Action}}}
	if req.Action == registry.ActionList {
		scope = []Access{{Type: TypeRegistry, Name: "catalog", Actions: []string{"*"}}}
	}
	if p.Anonymous {
		return "", g.challenge(r, scope, "authentication required to "+req.Action+" "+name)
	}
	return p.Name, &registry.Error{Status: http.StatusForbidden, Code: registry.CodeDenied,
		Message: "user " + p.Name + " may not " + req.Action + " " + name}
}

// Listable keeps the names (canonical repository names) the request's
// principal may list; isLocal tells local repositories from cached ones.
// A request whose credentials do not authenticate lists nothing.
func (g *Guard) Listable(r *http.Request, names []string, isLocal func(string) bool) []string {
	p, _, err := g.authenticate(r)
	if err != nil {
		return nil
	}
	ip := remoteIP(r)
	out := names[:0:0]
	for _, n := range names {
		if g.Evaluator.Authorize(r.Context(), Request{Principal: p, SourceIP: ip, Repo: n, Action: ActionList, RepoIsLocal: isLocal(n)}).Allowed {
			out = append(out, n)
		}
	}
	return out
}

// authenticate reads the request's credentials. No credentials is the
// anonymous principal; bad ones are a 401.
func (g *Guard) authenticate(r *http.Request) (Principal, *Claims, error) {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return Principal{Anonymous: true}, nil, nil
	case strings.HasPrefix(h, "Bearer "):
		c, err := verifyBound(g.Issuer, g.Users, strings.TrimPrefix(h, "Bearer "))
		if err != nil {
			return Principal{}, nil, g.challenge(r, nil, "invalid, expired or revoked token; log in again")
		}
		return c.Principal(), c, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return Principal{}, nil, g.challenge(r, nil, "unsupported Authorization scheme")
	}
	p, err := g.checkBasic(user, pass)
	if err != nil {
		return Principal{}, nil, g.challenge(r, nil, err.Error())
	}
	return p, nil, nil
}

// checkBasic accepts a user's password, or a login token Berth issued to
// that user (what `berth get-login-password | docker login
// --password-stdin` stores). Good credentials are remembered briefly so
// bcrypt runs once per client per minute, not once per request; a
// remembered one is dropped as soon as the user's credential changes.
func (g *Guard) checkBasic(user, pass string) (Principal, error) {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := time.Now()
	binding, exists := "", false
	if g.Users != nil {
		binding, exists = g.Users.Binding(user)
	}
	g.mu.Lock()
	e, ok := g.basic[key]
	if ok && (!now.Before(e.expires) || !exists || e.binding != binding) {
		delete(g.basic, key)
		ok = false
	}
	g.mu.Unlock()
	if ok {
		return e.p, nil
	}
	tok, err := TokenAuthenticator{Users: g.Users, Issuer: g.Issuer}.Login(user, pass)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Name: user}
	if g.Users != nil {
		p.Groups = g.Users.Groups(user)
	}
	e = basicEntry{p: p, binding: binding, expires: now.Add(basicTTL)}
	if tok != nil && tok.ExpiresAt.Before(e.expires) {
		e.expires = tok.ExpiresAt
	}
	g.mu.Lock()
	if g.basic == nil || len(g.basic) > 10000 {
		g.basic = map[[32]byte]basicEntry{}
	}
	g.basic[key] = e
	g.mu.Unlock()
	return p, nil
}

// challenge is a 401 telling the client where to get a token.
func (g *Guard) challenge(r *http.Request, scope []Access, msg string) error {
	realm := g.Realm
	if realm == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		realm = scheme + "://" + r.Host + "/token"
	}
	if ns := r.URL.Query().Get("ns"); ns != "" {
		// The token endpoint resolves the scope's name as this request
		// did; clients keep the realm's query when they ask for a token.
		realm += sep(realm) + "ns=" + url.QueryEscape(ns)
	}
	e := &registry.Error{Status: http.StatusUnauthorized, Code: registry.CodeUnauthorized, Message: msg,
		Header: http.Header{"Www-Authenticate": {Challenge(realm, g.Issuer.Service(), scope)}}}
	return e
}

// sep is what joins a query parameter to u.
func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}
