package node

import (
	"context"
	"errors"
	"math"
	"net/http"
	"reflect"
	"strings"
	"time"

	"berth/admin"
	"berth/auth"
	"berth/config"
	"berth/registry"
	"berth/upstream"

	"go.uber.org/zap"
)

// Runtime is one configuration in force and everything built from it: the
// upstream clients and router, and, with auth on, the users, token keys,
// policies, guard and token endpoint. It is immutable once built: a reload
// builds a new Runtime and swaps the node's pointer, and every consumer
// (the registry's guard and limiter, the token endpoint, the admin API and
// its guard, capacity, the janitor, audit) reads the pointer when it acts.
type Runtime struct {
	Config config.Config
	Router *upstream.Router
	// Security is nil when auth is off.
	Security *security
}

// Live is the runtime in force.
func (n *Node) Live() *Runtime { return n.rt.Load() }

// build makes the runtime of cfg. Nothing of the node changes.
func (n *Node) build(ctx context.Context, cfg config.Config) (*Runtime, error) {
	router, err := n.buildRouter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Config: cfg, Router: router}
	if cfg.Auth.Enabled {
		if rt.Security, err = newSecurity(ctx, cfg.Auth, cfg.DataDir, n.resolver(), n.store, n.limiter, n.log.Named("auth")); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// apply puts rt in force: the pointer every request reads, and the one
// long-lived object that holds settings of its own, the limiter (whose
// buckets survive the new rates).
func (n *Node) apply(rt *Runtime) {
	n.rt.Store(rt)
	n.upstreamMetrics(rt.Router)
	rl := rt.Config.RateLimit
	rps, burst := rl.RequestsPerSecond, rl.Burst
	if rl.Disabled {
		rps, burst = math.Inf(1), 1
	}
	n.limiter.SetRates(time.Now(), rps, burst, n.rateFor)
}

// rateFor gives a logged-in user the rate of their own entry, or of the
// first of their groups that has one.
func (n *Node) rateFor(key string) (float64, int, bool) {
	rt := n.Live()
	rl := rt.Config.RateLimit
	user, ok := strings.CutPrefix(key, "user:")
	if !ok || rl.Disabled {
		return 0, 0, false
	}
	if r, ok := rl.Users[user]; ok {
		return r.RequestsPerSecond, r.Burst, true
	}
	if rt.Security != nil {
		for _, g := range rt.Security.users.Groups(user) {
			if r, ok := rl.Groups[g]; ok {
				return r.RequestsPerSecond, r.Burst, true
			}
		}
	}
	return 0, 0, false
}

// Reload is SIGHUP: the TLS certificate, and the config file (or, on the
// built-in defaults, the users file) are read again. A file that does not
// load or validate changes nothing: the refusal is logged at error level,
// counted in berth_config_last_reload_successful and reported by the admin
// listener's /config. Listen addresses, the data directory, admin, audit,
// cluster, encryption and the scanner's workers and queue size need a
// restart; a change to them is warned about.
func (n *Node) Reload(ctx context.Context) error {
	if n.cert != nil {
		if err := n.cert.reload(); err != nil {
			n.log.Error("TLS certificate not reloaded; keeping the previous one", zap.Error(err))
		} else {
			n.log.Info("TLS certificate reloaded")
		}
	}
	old := n.Live()
	if n.path == "" {
		if sec := old.Security; sec != nil {
			if err := sec.users.Reload(); err != nil {
				n.log.Error("users not reloaded; keeping the previous set", zap.Error(err))
				return n.reloaded(err)
			}
		}
		return n.reloaded(nil)
	}
	cfg, err := LoadConfig(n.path)
	if err == nil {
		if n.overrides != nil {
			n.overrides(&cfg)
		}
		n.keepRestartOnly(old.Config, &cfg)
		warnReadableSecrets(n.log, cfg)
		var rt *Runtime
		if rt, err = n.build(ctx, cfg); err == nil {
			n.apply(rt)
			n.kickVulnDB()
			n.log.Info("config reloaded", zap.String("path", n.path), zap.String("hash", cfg.Source.Hash),
				zap.Int("upstreams", len(rt.Router.Upstreams())), zap.Bool("auth", cfg.Auth.Enabled))
		}
	}
	if err != nil {
		n.log.Error("config not reloaded; the running config stays in force", zap.String("path", n.path), zap.Error(err))
	}
	return n.reloaded(err)
}

// reloaded records the outcome of a reload.
func (n *Node) reloaded(err error) error {
	st := reloadStatus{At: time.Now().UTC(), Successful: err == nil}
	if err != nil {
		st.Error = err.Error()
	}
	n.lastReload.Store(&st)
	return err
}

// keepRestartOnly keeps in cfg what only a restart changes (listen
// addresses, the data directory, admin, audit, logging, tls.listen, the
// cluster) as it is in force, and warns when the file asks for another.
func (n *Node) keepRestartOnly(old config.Config, cfg *config.Config) {
	if cfg.Listen != old.Listen || cfg.DataDir != old.DataDir || cfg.Admin != old.Admin || cfg.Log != old.Log ||
		cfg.TLS.Listen != old.TLS.Listen || !reflect.DeepEqual(cfg.Cluster, old.Cluster) ||
		!reflect.DeepEqual(cfg.Audit, old.Audit) {
		n.log.Warn("listen addresses, dataDir, admin, audit, log, tls.listen and cluster changes take effect at the next restart")
	}
	cfg.Listen, cfg.DataDir, cfg.Admin, cfg.Log = old.Listen, old.DataDir, old.Admin, old.Log
	cfg.TLS.Listen, cfg.Cluster, cfg.Audit = old.TLS.Listen, old.Cluster, old.Audit
	n.keepEncryption(old, cfg)
	n.keepScanPool(old, cfg)
}

// reloadStatus is the outcome of the last reload, for /config.
type reloadStatus struct {
	At         time.Time `json:"at"`
	Successful bool      `json:"successful"`
	Error      string    `json:"error,omitempty"`
}

// liveGuard is the registry's guard: the guard of the runtime in force, or,
// when auth is off, loopbackWrites unless local.allowAnonymousRemoteWrites.
type liveGuard struct{ n *Node }

func (g liveGuard) Check(r *http.Request, req registry.AccessRequest) (string, error) {
	rt := g.n.Live()
	sec := rt.Security
	if sec == nil {
		if rt.Config.Local.AllowAnonymousRemoteWrites {
			return "", nil
		}
		return loopbackWrites{}.Check(r, req)
	}
	return sec.guard.Check(r, req)
}

// FilterCatalog keeps the repositories the request's principal may list,
// by the runtime in force; with auth off, all.
func (g liveGuard) FilterCatalog(r *http.Request, names []string) []string {
	rt := g.n.Live()
	if rt.Security == nil {
		return names
	}
	isLocal := func(name string) bool {
		_, err := rt.Router.RouteCanonical(name)
		return errors.Is(err, upstream.ErrNoRoute)
	}
	return rt.Security.guard.Listable(r, names, isLocal)
}

// serveToken is the token endpoint of the runtime in force; with auth off
// there is none.
func (n *Node) serveToken(w http.ResponseWriter, r *http.Request) {
	sec := n.Live().Security
	if sec == nil {
		http.Error(w, "no token endpoint: auth is off on this node", http.StatusNotFound)
		return
	}
	sec.token.ServeHTTP(w, r)
}

// requireAdmin guards the admin API by the runtime in force: with auth on,
// only members of auth.adminGroup, as it is now.
func (n *Node) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := n.Live()
		if rt.Security == nil {
			next.ServeHTTP(w, r)
			return
		}
		auth.RequireAdmin(auth.TokenAuthenticator{Users: rt.Security.creds, Issuer: rt.Security.issuer},
			rt.Config.Auth.AdminGroup, next).ServeHTTP(w, r)
	})
}

// adminLive is what the admin API reads of the runtime in force.
func (n *Node) adminLive() admin.Live {
	rt := n.Live()
	return admin.Live{Router: rt.Router, ConfigRules: rt.Config.Upstreams,
		LocalPrefixes: rt.Config.Local.Prefixes, GCGrace: rt.Config.Local.GCGrace, Pinned: n.pinned}
}

// reloadRules puts pull-through cache rules created or deleted through the
// admin API in force: the runtime is rebuilt from the config in force.
func (n *Node) reloadRules(ctx context.Context) {
	rt, err := n.build(ctx, n.Live().Config)
	if err != nil {
		n.log.Error("pull-through cache rules not applied; the node keeps routing by the previous ones", zap.Error(err))
		return
	}
	n.apply(rt)
	n.log.Info("pull-through cache rules applied", zap.Int("upstreams", len(rt.Router.Upstreams())))
}

// revokeTokens ends the tokens a user holds now, by the mark the admin API
// stored; with auth off there are none.
func (n *Node) revokeTokens(user, mark string) {
	if sec := n.Live().Security; sec != nil {
		sec.creds.Revoke(user, mark)
	}
}

// applyRepositoryPolicy puts a policy set (or deleted: nil) through the
// admin API into force at once; with auth off it is only stored (and read
// when auth is turned on).
func (n *Node) applyRepositoryPolicy(name string, text []byte) error {
	sec := n.Live().Security
	if sec == nil {
		return nil
	}
	if text == nil {
		sec.ev.SetPolicy(name, nil)
		return nil
	}
	p, err := auth.ParsePolicy(text)
	if err != nil {
		return err
	}
	sec.ev.SetPolicy(name, p)
	return nil
}
