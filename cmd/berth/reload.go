package main

import (
	"context"
	"net/http"
	"reflect"
	"time"

	"berth/admin"
	"berth/config"
	"berth/upstream"

	"go.uber.org/zap"
)

// buildRouter makes the upstream clients and the router for cfg, with the
// pull-through rules created through the admin API merged in.
func (n *node) buildRouter(ctx context.Context, cfg config.Config) (*upstream.Router, error) {
	rules, err := admin.MergeRules(ctx, n.store, cfg.Upstreams, cfg.Local.Prefixes)
	if err != nil {
		n.log.Warn("stored pull-through cache rules not loaded", zap.Error(err))
	}
	var ups []*upstream.Upstream
	for _, r := range rules {
		u, err := upstream.New(r, n.metrics.Transport(r.Name, upstream.DefaultTransport(r)), n.log.Named("upstream"))
		if err != nil {
			return nil, err
		}
		ups = append(ups, u)
	}
	router := upstream.NewRouter(ups, cfg.Local.Prefixes...)
	n.upstreamMetrics(router)
	return router, nil
}

func (n *node) setHandler(h http.Handler) { n.handler.Store(&h) }

// serveRegistry serves with the current registry handler; a reload swaps
// it for new requests while requests in flight (long blob streams) finish
// with the old one.
func (n *node) serveRegistry(w http.ResponseWriter, r *http.Request) {
	(*n.handler.Load()).ServeHTTP(w, r)
}

// reload is SIGHUP: users and the TLS certificate are re-read, and so is
// the config file: upstream rules, rate limits, auth defaults and
// policies, capacity. A config that does not load or validate is refused
// with its reasons and the running one stays. Listen addresses, the data
// directory and cluster membership need a restart.
func (n *node) reload(ctx context.Context) {
	if n.cert != nil {
		if err := n.cert.reload(); err != nil {
			n.log.Error("TLS certificate not reloaded; keeping the previous one", zap.Error(err))
		} else {
			n.log.Info("TLS certificate reloaded")
		}
	}
	if n.cfgPath == "" {
		n.reloadUsers()
		return
	}
	cfg, err := loadConfig(n.cfgPath)
	if err != nil {
		n.log.Error("config not reloaded; keeping the running one", zap.Error(err))
		n.reloadUsers()
		return
	}
	old := n.cfg
	if cfg.Listen != old.Listen || cfg.DataDir != old.DataDir || cfg.Admin != old.Admin ||
		cfg.TLS.Listen != old.TLS.Listen || !reflect.DeepEqual(cfg.Cluster, old.Cluster) {
		n.log.Warn("listen addresses, dataDir, admin, tls.listen and cluster changes take effect at the next restart")
	}
	router, err := n.buildRouter(ctx, cfg)
	if err != nil {
		n.log.Error("config not reloaded; keeping the running one", zap.Error(err))
		return
	}
	var sec *security
	if cfg.Auth.Enabled {
		if sec, err = newSecurity(ctx, cfg.Auth, old.DataDir, n.mirror, n.store, n.log.Named("auth")); err != nil {
			n.log.Error("config not reloaded; keeping the running one", zap.Error(err))
			return
		}
	}
	n.proxy.SetRouter(router)
	n.limits.update(cfg.Cache, router)
	n.sec = sec
	n.evaluator.Store(nil)
	if sec != nil {
		n.evaluator.Store(sec.ev)
	}
	n.cfg.Upstreams, n.cfg.RateLimit, n.cfg.Auth, n.cfg.Cache = cfg.Upstreams, cfg.RateLimit, cfg.Auth, cfg.Cache
	live := n.cfg
	n.liveCfg.Store(&live)
	n.setHandler(n.registryHandler())
	n.log.Info("config reloaded", zap.String("path", n.cfgPath), zap.Int("upstreams", len(router.Upstreams())))
}

func (n *node) reloadUsers() {
	if n.sec == nil {
		return
	}
	if err := n.sec.users.Reload(); err != nil {
		n.log.Error("users not reloaded; keeping the previous set", zap.Error(err))
	} else {
		n.log.Info("users reloaded")
	}
}

// upstreamMetrics points the per-upstream quota metrics at the current
// clients; an upstream's series are registered once, at its first sight.
func (n *node) upstreamMetrics(router *upstream.Router) {
	for _, u := range router.Upstreams() {
		name := u.Rule.Name
		n.upMu.Lock()
		first := n.ups == nil || n.ups[name] == nil
		if n.ups == nil {
			n.ups = map[string]*upstream.Upstream{}
		}
		n.ups[name] = u
		n.upMu.Unlock()
		if !first {
			continue
		}
		cur := func() *upstream.Upstream { n.upMu.Lock(); defer n.upMu.Unlock(); return n.ups[name] }
		n.metrics.UpstreamFuncs(name,
			func() float64 { return float64(cur().Throttled()) },
			func() float64 {
				if until, ok := cur().Backoff(); ok {
					return time.Until(until).Seconds()
				}
				return 0
			})
	}
}

// adminLive is what the admin API reads of the live configuration.
func (n *node) adminLive() admin.Live {
	cfg := n.liveCfg.Load()
	return admin.Live{Router: n.proxy.Router(), ConfigRules: cfg.Upstreams,
		LocalPrefixes: cfg.Local.Prefixes, GCGrace: cfg.Local.GCGrace}
}

// reloadRules rebuilds the router after a pull-through cache rule was
// created or deleted through the admin API, so the node routes by it now.
func (n *node) reloadRules(ctx context.Context) {
	router, err := n.buildRouter(ctx, *n.liveCfg.Load())
	if err != nil {
		n.log.Error("pull-through cache rules not applied; the node keeps routing by the previous ones", zap.Error(err))
		return
	}
	n.proxy.SetRouter(router)
	n.limits.update(n.liveCfg.Load().Cache, router)
	n.log.Info("pull-through cache rules applied", zap.Int("upstreams", len(router.Upstreams())))
}
