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

// authenticate reads the request's credentials. No credentials is the
// anonymous principal; bad ones are a 401.
func (g *Guard) authenticate(r *http.Request) (Principal, *Claims, error) {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return Principal{Anonymous: true}, nil, nil
	case strings.HasPrefix(h, "Bearer "):
		c, err := g.Issuer.Verify(strings.TrimPrefix(h, "Bearer "))
		if err != nil {
			return Principal{}, nil, g.challenge(r, nil, "invalid or expired token; log in again")
		}
		return c.Principal(), c, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return Principal{}, nil, g.challenge(r, nil, "unsupported Authorization scheme")
	}
	if p, ok := g.checkBasic(user, pass); ok {
		return p, nil, nil
	}
	return Principal{}, nil, g.challenge(r, nil, "invalid username or password")
}

// checkBasic accepts a user's password, or a token Berth issued to that
// user (what `berth get-login-password | docker login --password-stdin`
// stores). Good credentials are remembered briefly so bcrypt runs once per
// client per minute, not once per request.
func (g *Guard) checkBasic(user, pass string) (Principal, bool) {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := time.Now()
	g.mu.Lock()
	if e, ok := g.basic[key]; ok && now.Before(e.expires) {
		g.mu.Unlock()
		return e.p, true
	}
	g.mu.Unlock()
	var p Principal
	switch {
	case g.Users != nil && g.Users.Authenticate(user, pass):
		p = Principal{Name: user, Groups: g.Users.Groups(user)}
	default:
		c, err := g.Issuer.Verify(pass)
		if err != nil || c.Subject != user || user == "" {
			return Principal{}, false
		}
		p = Principal{Name: user}
		if g.Users != nil {
			p.Groups = g.Users.Groups(user)
		}
	}
	g.mu.Lock()
	if g.basic == nil || len(g.basic) > 10000 {
		g.basic = map[[32]byte]basicEntry{}
	}
	g.basic[key] = basicEntry{p: p, expires: now.Add(basicTTL)}
	g.mu.Unlock()
	return p, true
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

// TokenAuthenticator accepts a user's password or a token Berth issued to
// the user, for the token endpoint's Basic credentials.
type TokenAuthenticator struct {
	Users  Authenticator
	Issuer *Issuer
}

func (t TokenAuthenticator) Authenticate(user, pass string) bool {
	if t.Users != nil && t.Users.Authenticate(user, pass) {
		return true
	}
	c, err := t.Issuer.Verify(pass)
	return err == nil && user != "" && c.Subject == user
}

func (t TokenAuthenticator) Groups(user string) []string {
	if t.Users == nil {
		return nil
	}
	return t.Users.Groups(user)
}

// sep is what joins a query parameter to u.
func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}
