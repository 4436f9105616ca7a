package main

import (
	"berth/store"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"berth/auth"
	"berth/registry"
	"berth/upstream"

	"go.uber.org/zap"
)

// AuthConfig turns on logins, tokens and repository policies.
type AuthConfig struct {
	// Enabled: without it every request is allowed (an edge mirror in a
	// trusted subnet).
	Enabled bool `yaml:"enabled"`
	// Htpasswd is the users file (bcrypt); reloaded on SIGHUP.
	Htpasswd string `yaml:"htpasswd"`
	// GroupsFile holds "group: user1 user2" lines; Groups adds more.
	GroupsFile string              `yaml:"groupsFile"`
	Groups     map[string][]string `yaml:"groups"`
	// TokenKeys are PEM files of Ed25519/ECDSA keys: the first signs, all
	// verify (rotation). Empty: a key generated once in <dataDir>/auth.
	TokenKeys []string `yaml:"tokenKeys"`
	// TokenTTL is how long a token is valid (12h, as ECR's).
	TokenTTL time.Duration `yaml:"tokenTTL"`
	// Realm is the token endpoint's public URL; empty derives it from
	// each request's host.
	Realm string `yaml:"realm"`
	// Anonymous and Authenticated are the default grants where no policy
	// statement applies: actions (pull, push, delete, list) on cached and
	// local repositories.
	Anonymous     GrantConfig `yaml:"anonymous"`
	Authenticated GrantConfig `yaml:"authenticated"`
	// Policies are repository policies in ECR's JSON, per repository or
	// per namespace pattern.
	Policies []PolicyConfig `yaml:"policies"`
	// AdminGroup's members may use the admin API (and nobody else, once
	// auth is on).
	AdminGroup string `yaml:"adminGroup"`
}

// GrantConfig lists default actions.
type GrantConfig struct {
	Cached  []string `yaml:"cached"`
	Local   []string `yaml:"local"`
	Catalog bool     `yaml:"catalog"`
}

// PolicyConfig attaches a policy to a repository or a name pattern.
type PolicyConfig struct {
	Repository string `yaml:"repository"`
	Namespace  string `yaml:"namespace"` // e.g. "private/*"
	File       string `yaml:"file"`
	Policy     string `yaml:"policy"` // inline JSON
}

func defaultAuthConfig() AuthConfig {
	d := auth.DefaultDefaults()
	return AuthConfig{
		TokenTTL:      12 * time.Hour,
		AdminGroup:    "admins",
		Anonymous:     GrantConfig{Cached: d.Anonymous.Cached, Local: d.Anonymous.Local, Catalog: d.Anonymous.Catalog},
		Authenticated: GrantConfig{Cached: d.Authenticated.Cached, Local: d.Authenticated.Local, Catalog: d.Authenticated.Catalog},
	}
}

func (c AuthConfig) validate() []error {
	var errs []error
	if !c.Enabled {
		return nil
	}
	if c.Htpasswd == "" {
		errs = append(errs, errors.New("auth.htpasswd: required when auth is enabled"))
	}
	if c.TokenTTL <= 0 {
		errs = append(errs, errors.New("auth.tokenTTL: must be positive"))
	}
	for i, p := range c.Policies {
		at := fmt.Sprintf("auth.policies[%d]", i)
		if (p.Repository == "") == (p.Namespace == "") {
			errs = append(errs, fmt.Errorf("%s: give repository or namespace, not both or neither", at))
		}
		if (p.File == "") == (p.Policy == "") {
			errs = append(errs, fmt.Errorf("%s: give file or policy, not both or neither", at))
			continue
		}
		if _, err := p.load(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		}
	}
	return errs
}

func (p PolicyConfig) load() (*auth.Policy, error) {
	data := []byte(p.Policy)
	if p.File != "" {
		var err error
		if data, err = os.ReadFile(p.File); err != nil {
			return nil, err
		}
	}
	return auth.ParsePolicy(data)
}

// security is what auth builds for the node.
type security struct {
	ev     *auth.Evaluator
	users  *auth.Reloadable
	issuer *auth.Issuer
	guard  *auth.Guard
	token  http.Handler
}

// canonicalFor names repositories for policies: cached ones as
// "<prefix or rule name>/<upstream repository>", local ones by name.
func canonicalFor(router *upstream.Router) auth.Canonical {
	return func(repo registry.Repo) (string, bool) {
		t, err := router.Route(repo.NS, repo.Name)
		if err != nil {
			return repo.Name, errors.Is(err, upstream.ErrNoRoute)
		}
		p := t.Upstream.Rule.Prefix
		if p == "" {
			p = t.Upstream.Rule.Name
		}
		return p + "/" + t.Repo, false
	}
}

func newSecurity(ctx context.Context, cfg AuthConfig, dataDir string, router *upstream.Router, st *store.Store, log *zap.Logger) (*security, error) {
	users, err := auth.NewReloadable(auth.UsersSource{HtpasswdPath: cfg.Htpasswd, GroupsPath: cfg.GroupsFile, Groups: cfg.Groups}, log)
	if err != nil {
		return nil, err
	}
	keys := cfg.TokenKeys
	if len(keys) == 0 {
		k, err := ensureTokenKey(filepath.Join(dataDir, "auth", "token-key.pem"))
		if err != nil {
			return nil, err
		}
		keys = []string{k}
	}
	var kcs []auth.KeyConfig
	for _, k := range keys {
		kcs = append(kcs, auth.KeyConfig{PEMFile: k})
	}
	issuer, err := auth.NewIssuer(auth.IssuerConfig{Keys: kcs, TTL: cfg.TokenTTL}, log)
	if err != nil {
		return nil, err
	}
	canon := canonicalFor(router)
	defaults := auth.Defaults{
		Anonymous:     auth.DefaultGrants{Cached: cfg.Anonymous.Cached, Local: cfg.Anonymous.Local, Catalog: cfg.Anonymous.Catalog},
		Authenticated: auth.DefaultGrants{Cached: cfg.Authenticated.Cached, Local: cfg.Authenticated.Local, Catalog: cfg.Authenticated.Catalog},
	}
	ecfg := auth.EvaluatorConfig{
		Repositories: map[string]*auth.Policy{}, Namespaces: map[string]*auth.Policy{}, Defaults: &defaults,
		IsLocal: func(name string) bool { _, local := canon(registry.Repo{Name: name}); return local },
	}
	for _, pc := range cfg.Policies {
		p, err := pc.load()
		if err != nil {
			return nil, err
		}
		if pc.Repository != "" {
			ecfg.Repositories[pc.Repository] = p
		} else {
			ecfg.Namespaces[pc.Namespace] = p
		}
	}
	ev, err := auth.NewEvaluator(ecfg, log)
	if err != nil {
		return nil, err
	}
	// Policies set through the admin API (set-repository-policy) join the
	// config's; a stored policy of the same name wins.
	stored, err := st.ListPolicies(ctx, store.PolicyRepository)
	if err != nil {
		return nil, err
	}
	for _, e := range stored {
		p, err := auth.ParsePolicy(e.Value)
		if err != nil {
			log.Warn("stored repository policy does not parse; ignored", zap.String("repository", e.Name), zap.Error(err))
			continue
		}
		ev.SetPolicy(e.Name, p)
	}
	token, err := auth.NewTokenHandler(auth.TokenHandlerConfig{
		Issuer: issuer, Authorizer: auth.CanonicalAuthorizer{Evaluator: ev, Canonical: canon},
		Users: auth.TokenAuthenticator{Users: users, Issuer: issuer}, TTL: cfg.TokenTTL,
	}, log)
	if err != nil {
		return nil, err
	}
	return &security{
		ev: ev, users: users, issuer: issuer, token: token,
		guard: &auth.Guard{Users: users, Issuer: issuer, Evaluator: ev, Canonical: canon, Realm: cfg.Realm, Log: log},
	}, nil
}

// ensureTokenKey returns a PEM file with the node's token key, creating an
// Ed25519 key on first start.
func ensureTokenKey(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// requireAdmin lets through only members of the admin group, by Basic
// credentials (a password or a token Berth issued).
func (s *security) requireAdmin(group string, next http.Handler) http.Handler {
	check := auth.TokenAuthenticator{Users: s.users, Issuer: s.issuer}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || !check.Authenticate(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth admin"`)
			writeAdminError(w, http.StatusUnauthorized, "UNAUTHORIZED", "the admin API needs an admin's credentials (BERTH_USERNAME, BERTH_PASSWORD)")
			return
		}
		if !slices.Contains(check.Groups(user), group) {
			writeAdminError(w, http.StatusForbidden, "DENIED", "user "+user+" is not in the admin group "+group)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeAdminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Write(body)
}

// applyRepositoryPolicy puts a policy set (or deleted: nil) through the
// admin API into force at once; with auth off it is only stored.
func (n *node) applyRepositoryPolicy(name string, text []byte) error {
	ev := n.evaluator.Load()
	if ev == nil {
		return nil
	}
	if text == nil {
		ev.SetPolicy(name, nil)
		return nil
	}
	p, err := auth.ParsePolicy(text)
	if err != nil {
		return err
	}
	ev.SetPolicy(name, p)
	return nil
}
