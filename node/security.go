package node

import (
	"context"
	"net/http"
	"path/filepath"

	"berth/auth"
	"berth/config"
	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// security is what auth builds for the node.
type security struct {
	ev    *auth.Evaluator
	users *auth.Reloadable
	// creds are the users with their revocation marks: what every
	// password and token check asks.
	creds  *auth.Revocable
	issuer *auth.Issuer
	guard  *auth.Guard
	token  http.Handler
}

func newSecurity(ctx context.Context, cfg config.Auth, dataDir string, resolver registry.Resolver, st *store.Store, requests *registry.Limiter, log *zap.Logger) (*security, error) {
	users, err := auth.NewReloadable(auth.UsersSource{HtpasswdPath: cfg.Htpasswd, GroupsPath: cfg.GroupsFile, Groups: cfg.Groups}, log)
	if err != nil {
		return nil, err
	}
	keys := cfg.TokenKeys
	if len(keys) == 0 {
		k, err := auth.EnsureKey(filepath.Join(dataDir, "auth", "token-key.pem"))
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
	defaults := auth.Defaults{Anonymous: grants(cfg.Anonymous), Authenticated: grants(cfg.Authenticated)}
	ecfg := auth.EvaluatorConfig{
		Repositories: map[string]*auth.Policy{}, Namespaces: map[string]*auth.Policy{}, Defaults: &defaults,
	}
	for _, pc := range cfg.Policies {
		p, err := loadPolicy(pc)
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
	creds, err := revocable(ctx, users, st)
	if err != nil {
		return nil, err
	}
	token, err := auth.NewTokenHandler(auth.TokenHandlerConfig{
		Issuer: issuer, Authorizer: ev, Resolver: resolver,
		Users: auth.TokenAuthenticator{Users: creds, Issuer: issuer}, TTL: cfg.TokenTTL, Requests: requests,
	}, log)
	if err != nil {
		return nil, err
	}
	return &security{
		ev: ev, users: users, creds: creds, issuer: issuer, token: token,
		guard: &auth.Guard{Users: creds, Issuer: issuer, Evaluator: ev, Realm: cfg.Realm, Log: log},
	}, nil
}

// revocable wraps users with the token revocations recorded in the store
// (berth revoke-tokens), which survive restarts and reloads.
func revocable(ctx context.Context, users *auth.Reloadable, st *store.Store) (*auth.Revocable, error) {
	entries, err := st.ListPolicies(ctx, store.PolicyRevocation)
	if err != nil {
		return nil, err
	}
	marks := map[string]string{}
	for _, e := range entries {
		marks[e.Name] = string(e.Value)
	}
	return auth.NewRevocable(users, marks), nil
}

// grants are configured default grants in auth's terms.
func grants(g config.Grant) auth.DefaultGrants {
	return auth.DefaultGrants{Cached: g.Cached, Local: g.Local, Catalog: g.Catalog}
}
