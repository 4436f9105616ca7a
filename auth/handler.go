package auth

import (
	"berth/registry"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Authorizer says which of the requested actions p may perform. *Evaluator
// implements it. A repository access names the canonical repository, and
// local says whether it is a local repository.
type Authorizer interface {
	Grant(ctx context.Context, p Principal, ip netip.Addr, requested Access, local bool) ([]string, error)
}

// TokenHandlerConfig configures a TokenHandler.
type TokenHandlerConfig struct {
	// Issuer signs the tokens. Required.
	Issuer *Issuer
	// Authorizer trims the requested scopes. Required.
	Authorizer Authorizer
	// Resolver resolves the repository names of scopes, with the
	// request's ns (the registry's challenge puts it in the realm), to the
	// canonical names the token then holds. Nil takes every name as a local
	// repository of that name.
	Resolver registry.Resolver
	// Users checks Basic credentials: passwords, and login tokens when it
	// is a TokenAuthenticator (any other Authenticator is made one with
	// Issuer). Nil refuses every credential and serves anonymous tokens
	// only.
	Users Authenticator
	// TTL of the tokens; zero means the issuer's.
	TTL time.Duration
	// ClientIP is the address policies see; default: the host of
	// r.RemoteAddr (a front that trusts a proxy header sets its own).
	ClientIP func(r *http.Request) netip.Addr
	// Realm of the Basic challenge sent with a 401; default the service.
	Realm string
	// Limiter holds the per-address buckets a request with credentials is
	// admitted by before they are checked (see registry.Logins); nil: a
	// limiter of its own, DefaultLoginRate per address.
	Limiter *registry.Limiter
	// Requests holds the per-client buckets every token request is
	// admitted by, as registry requests are: an anonymous one by its
	// address's, a good login by its user's (a failed one is charged to
	// Limiter's). Each token is signed and audited, so without a bucket an
	// anonymous client could ask for them without end. Nil: no limit.
	Requests *registry.Limiter
}

// The token endpoint's own per-address limit on credential checks when it
// is given no limiter: since good logins are not charged, it bounds failed
// ones, and the checks in flight at once to the burst.
const (
	DefaultLoginRate  = 5
	DefaultLoginBurst = 20
)

// TokenHandler serves Docker's token endpoint:
//
//	GET /token?service=berth&scope=repository:private/app:pull,push
//
// with Basic credentials, or none for an anonymous token. It answers
//
//	{"token":"…","access_token":"…","expires_in":43200,"issued_at":"2006-01-02T15:04:05Z"}
//
// whose access claim holds the requested actions the Authorizer grants
// (requests nobody may perform just get a token without them, as Docker
// expects). Bad credentials get a 401 with the OCI error body UNAUTHORIZED.
// The account, client_id and offline_token parameters are ignored.
//
// With login=true and a user's credentials it issues a login token (what
// `berth get-login-password` asks for), the only kind of token accepted in
// place of a password. A token minted with a login token expires no later
// than it does. Every token is bound to the user's current password.
// A request may ask for at most MaxScopes scopes of MaxScopeBytes in all.
type TokenHandler struct {
	issuer   *Issuer
	authz    Authorizer
	resolver registry.Resolver
	users    *TokenAuthenticator
	ttl      time.Duration
	clientIP func(*http.Request) netip.Addr
	realm    string
	logins   *registry.Logins
	requests *registry.Limiter
	log      *zap.Logger
}

// NewTokenHandler checks cfg and builds the handler.
func NewTokenHandler(cfg TokenHandlerConfig, log *zap.Logger) (*TokenHandler, error) {
	if cfg.Issuer == nil || cfg.Authorizer == nil {
		return nil, errors.New("token handler: issuer and authorizer are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	h := &TokenHandler{
		issuer: cfg.Issuer, authz: cfg.Authorizer, resolver: cfg.Resolver,
		ttl: cfg.TTL, clientIP: cfg.ClientIP, realm: cfg.Realm, requests: cfg.Requests, log: log,
	}
	switch u := cfg.Users.(type) {
	case nil:
	case TokenAuthenticator:
		h.users = &u
	default:
		h.users = &TokenAuthenticator{Users: u, Issuer: cfg.Issuer}
	}
	if h.ttl <= 0 {
		h.ttl = cfg.Issuer.TTL()
	}
	if h.clientIP == nil {
		h.clientIP = remoteIP
	}
	if h.realm == "" {
		h.realm = cfg.Issuer.Service()
	}
	lim := cfg.Limiter
	if lim == nil {
		lim = registry.NewLimiter(DefaultLoginRate, DefaultLoginBurst)
	}
	h.logins = registry.NewLogins(lim)
	return h, nil
}

func remoteIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(r.RemoteAddr)
	return a.Unmap()
}

// tokenResponse is the body of a successful token request.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "use GET for tokens")
		return
	}
	q := r.URL.Query()
	if svc := q.Get("service"); svc != "" && svc != h.issuer.Service() {
		writeError(w, r, http.StatusBadRequest, codeUnsupported, "unknown service "+strconv.Quote(svc))
		return
	}
	want, err := parseScopes(q["scope"])
	if err != nil {
		writeError(w, r, http.StatusBadRequest, codeUnsupported, err.Error())
		return
	}
	ip := h.clientIP(r)
	p, parent, err := h.admitAndAuthenticate(r, ip)
	var re *registry.Error
	if errors.As(err, &re) {
		h.log.Warn("token request refused", zap.Stringer("ip", ip), zap.Error(err))
		registry.WriteError(w, r, err)
		return
	}
	if err != nil {
		h.log.Warn("token request with bad credentials", zap.String("user", registry.Clip(p.Name)), zap.Stringer("ip", ip), zap.Error(err))
		w.Header().Set("WWW-Authenticate", `Basic realm=`+quote(h.realm))
		writeError(w, r, http.StatusUnauthorized, codeUnauthorized, "authentication required: "+err.Error())
		return
	}
	granted, err := h.grant(r, p, ip, want)
	if err != nil {
		h.log.Error("authorizer failed", zap.Error(err))
		writeError(w, r, http.StatusInternalServerError, codeUnknown, "authorization failed")
		return
	}
	spec := TokenSpec{Subject: p.Name, Access: granted, TTL: h.ttl, Login: !p.Anonymous && q.Get("login") == "true"}
	if parent != nil {
		spec.NotAfter = parent.ExpiresAt
	}
	if !p.Anonymous {
		spec.Binding, _ = h.users.Binding(p.Name)
	}
	tok, exp, err := h.issuer.Sign(spec)
	if err != nil {
		h.log.Error("issuing token failed", zap.Error(err))
		writeError(w, r, http.StatusInternalServerError, codeUnknown, "could not issue a token")
		return
	}
	h.log.Debug("issued token", zap.String("user", p.Name), zap.Stringer("ip", ip), zap.Bool("login", spec.Login),
		zap.Any("requested", want), zap.Any("granted", granted))
	now := h.issuer.now().Truncate(time.Second)
	body, _ := json.Marshal(tokenResponse{
		Token: tok, AccessToken: tok,
		ExpiresIn: int(exp.Sub(now) / time.Second),
		IssuedAt:  now.UTC().Format(time.RFC3339),
	})
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// grant trims the requested scopes to what p may do. Repository names are
// resolved (with the request's ns) to canonical names, which the token
// holds: it is good for that repository and no other route to another.
func (h *TokenHandler) grant(r *http.Request, p Principal, ip netip.Addr, want []Access) ([]Access, error) {
	ns := r.URL.Query().Get("ns")
	granted := []Access{}
	for _, a := range want {
		local := false
		if a.Type == TypeRepository {
			t := registry.Target{Name: a.Name}
			if h.resolver != nil {
				var err error
				if t, err = h.resolver.Resolve(registry.Repo{Name: a.Name, NS: ns}); err != nil {
					continue // a name nothing serves gets nothing
				}
			}
			a.Name, local = t.Name, t.Local()
		}
		acts, err := h.authz.Grant(r.Context(), p, ip, a, local)
		if err != nil {
			return nil, fmt.Errorf("scope %s: %w", a, err)
		}
		// Never hand out more than was asked for ("*" asks for everything).
		var keep []string
		for _, x := range acts {
			if slices.Contains(a.Actions, x) || slices.Contains(a.Actions, "*") {
				keep = appendUnique(keep, x)
			}
		}
		if len(keep) > 0 {
			granted = append(granted, Access{Type: a.Type, Name: a.Name, Actions: keep})
		}
	}
	return granted, nil
}

// admitAndAuthenticate authenticates r once the login limits admit it: a
// client being refused gets a 429 *registry.Error and costs no bcrypt.
func (h *TokenHandler) admitAndAuthenticate(r *http.Request, ip netip.Addr) (Principal, *Claims, error) {
	user, _, ok := r.BasicAuth()
	if !ok {
		if err := h.admit("ip:" + ip.String()); err != nil {
			return Principal{Anonymous: true}, nil, err
		}
		return h.authenticate(r)
	}
	hold, err := h.logins.Hold(ip.String(), user, h.issuer.now())
	if err != nil {
		return Principal{Name: user}, nil, err
	}
	p, parent, err := h.authenticate(r)
	if err != nil {
		hold.Failed(h.issuer.now())
		return p, parent, err
	}
	hold.Succeeded(h.issuer.now())
	if err := h.admit("user:" + p.Name); err != nil {
		return p, nil, err
	}
	return p, parent, nil
}

// admit takes a token of key's bucket in Requests (keys as the registry
// names its clients), or returns its 429 *registry.Error.
func (h *TokenHandler) admit(key string) error {
	if h.requests == nil {
		return nil
	}
	return h.requests.Admit(key, registry.Route{Kind: registry.KindBase}, h.issuer.now())
}

// authenticate returns the principal of r: anonymous without an
// Authorization header, the user for good Basic credentials, and an error
// for anything else. When the password was a login token it returns its
// claims too.
func (h *TokenHandler) authenticate(r *http.Request) (Principal, *Claims, error) {
	if r.Header.Get("Authorization") == "" {
		return Principal{Anonymous: true}, nil, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" {
		return Principal{}, nil, errors.New("basic credentials with a user name are required")
	}
	if h.users == nil {
		return Principal{Name: user}, nil, ErrBadPassword
	}
	parent, err := h.users.Login(user, pass)
	if err != nil {
		return Principal{Name: user}, nil, err
	}
	return Principal{Name: user, Groups: slices.Clone(h.users.Groups(user))}, parent, nil
}

// Limits of one token request.
const (
	// MaxScopes is the most scopes one token request may ask for.
	MaxScopes = 16
	// MaxScopeBytes bounds the scope parameters of one request together.
	MaxScopeBytes = 8 << 10
)

// parseScopes parses a token request's scope parameters within the limits.
func parseScopes(params []string) ([]Access, error) {
	n := 0
	for _, p := range params {
		n += len(p)
	}
	if n > MaxScopeBytes {
		return nil, fmt.Errorf("%w: the scopes are %d bytes; at most %d are accepted per token request", ErrInvalidScope, n, MaxScopeBytes)
	}
	want, err := ParseScope(strings.Join(params, " "))
	if err != nil {
		return nil, err
	}
	if len(want) > MaxScopes {
		return nil, fmt.Errorf("%w: %d scopes asked for; at most %d are accepted per token request", ErrInvalidScope, len(want), MaxScopes)
	}
	return want, nil
}

// OCI distribution error codes the handler sends.
const (
	codeUnauthorized = "UNAUTHORIZED"
	codeUnsupported  = "UNSUPPORTED"
	codeUnknown      = "UNKNOWN"
)

// writeError writes the OCI error body {"errors":[{"code":…,"message":…}]}.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []entry `json:"errors"`
	}{[]entry{{code, msg}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
