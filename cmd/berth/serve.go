package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"berth/admin"
	"berth/audit"
	"berth/auth"
	"berth/cluster"
	"berth/config"
	"berth/local"
	"berth/metrics"
	"berth/mirror"
	"berth/proxy"
	"berth/reclaim"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func serveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "config file (built-in defaults when empty)")
	listen := fs.String("listen", "", "override listen address")
	dataDir := fs.String("data-dir", "", "override data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	return serve(ctx, *path, cfg, log)
}

func newLogger(c config.Log) (*zap.Logger, error) {
	zc, err := loggerConfig(c)
	if err != nil {
		return nil, err
	}
	return zc.Build()
}

// loggerConfig is zap's production configuration, or its development one
// for the console format, with timestamps in RFC 3339 (ISO 8601) and Go
// stack traces on errors only, not on every warning.
func loggerConfig(c config.Log) (zap.Config, error) {
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false // development mode adds a stack trace from warn up
	}
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return zc, err
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return zc, nil
}

// node is one running Berth: its store, upstreams, backends and metrics.
type node struct {
	cfg     config.Config
	log     *zap.Logger
	store   *store.Store
	proxy   *proxy.Proxy
	repos   *local.Repos
	reclaim *reclaim.Reclaimer
	limits  *capacity
	mirror  *mirror.Mirror
	prom    *prometheus.Registry
	metrics *metrics.Metrics
	audit   *audit.Log
	cap     *reclaim.Capacity
	sec     *security // nil when auth is off
	// evaluator is the live policy evaluator (nil when auth is off), for
	// policies set through the admin API.
	evaluator atomic.Pointer[auth.Evaluator]
	cert      *certificate
	cluster   *cluster.Cluster // nil for a single node
	peerTLS   *tls.Config      // the peer listener's mutual TLS, nil without
	router    *upstream.Router
	admin     *admin.Service
	cfgPath   string                        // re-read on SIGHUP; "" for built-in defaults
	liveCfg   atomic.Pointer[config.Config] // the config in force, swapped by a reload
	handler   atomic.Pointer[http.Handler]  // the registry API, swapped by a reload
	upMu      sync.Mutex
	ups       map[string]*upstream.Upstream // current client per upstream name, for metrics
	ready     atomic.Bool
}

func newNode(ctx context.Context, cfg config.Config, log *zap.Logger) (*node, error) {
	n := &node{cfg: cfg, log: log, prom: prometheus.NewRegistry()}
	n.liveCfg.Store(&cfg)
	n.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.metrics = metrics.New(n.prom)
	store, err := store.Open(ctx, cfg.DataDir, store.Options{HotManifestBytes: cfg.Cache.HotManifestBytes, Logger: log.Named("cache")})
	if err != nil {
		return nil, err
	}
	n.store = store
	router, err := n.buildRouter(ctx, cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	n.router = router
	n.reclaim = reclaim.New(store, reclaim.Options{Logger: log.Named("reclaim")})
	n.repos = local.New(store, local.Options{
		AutoCreate: cfg.Local.AutoCreate, DefaultMutability: cfg.Local.DefaultMutability, Logger: log.Named("local"),
		Reclaim: n.reclaim,
	})
	n.limits = &capacity{store: store}
	n.limits.update(cfg.Cache, router)
	n.cap = n.reclaim.Capacity(reclaim.CapacityOptions{Dir: cfg.DataDir, Settings: n.limits.limits, Pinned: n.limits.pinned,
		OnEvict: func(k int) { n.metrics.Evictions.Add(float64(k)) }, Logger: log.Named("capacity")})
	if cfg.Cluster.Enabled() {
		stats := func() cluster.NodeStats {
			st := store.Stats()
			return cluster.NodeStats{StoredBytes: st.BlobBytes, Blobs: st.Blobs}
		}
		var clientTLS *tls.Config
		if cfg.Cluster.TLS.Enabled() {
			if n.peerTLS, clientTLS, err = peerTLSConfigs(cfg.Cluster.TLS); err != nil {
				store.Close()
				return nil, err
			}
		}
		if n.cluster, err = startCluster(ctx, cfg.Cluster, clientTLS, stats, log.Named("cluster")); err != nil {
			store.Close()
			return nil, err
		}
		n.metrics.Gauge("berth_cluster_members", "Alive members of the cluster, this node included.", func() float64 {
			alive := 0
			for _, m := range n.cluster.Members() {
				if m.State == cluster.StateAlive {
					alive++
				}
			}
			return float64(alive)
		})
	}
	popts := proxy.Options{FillTimeout: cfg.Cache.FillTimeout, Logger: log.Named("proxy"), Metrics: n.metrics, Cluster: n.cluster}
	if cfg.Cache.MaxBytes > 0 || cfg.Cache.MinFreeBytes > 0 {
		popts.Reserve = n.cap.Reserve
	}
	n.proxy = proxy.New(store, router, popts)
	var mopts mirror.Options
	if cfg.Cache.MaxBytes > 0 || cfg.Cache.MinFreeBytes > 0 {
		mopts.Reserve = n.cap.Reserve
	}
	n.mirror = mirror.New(n.proxy, n.repos, store, mopts)
	n.admin = admin.New(admin.Options{Store: n.store, Repos: n.repos, Reclaim: n.reclaim, Live: n.adminLive, Stats: admin.PromStats(n.prom),
		OnRepositoryPolicy: n.applyRepositoryPolicy,
		OnRulesChanged:     func() { n.reloadRules(context.WithoutCancel(ctx)) }, Logger: log.Named("admin")})
	if cfg.Auth.Enabled {
		if n.sec, err = newSecurity(ctx, cfg.Auth, cfg.DataDir, n.mirror, store, log.Named("auth")); err != nil {
			n.proxy.Close()
			store.Close()
			return nil, err
		}
		n.evaluator.Store(n.sec.ev)
	}
	if cfg.TLS.Listen != "" {
		if n.cert, err = newCertificate(cfg.TLS); err != nil {
			n.proxy.Close()
			store.Close()
			return nil, err
		}
	}
	if !cfg.Audit.Disabled {
		n.audit, err = audit.Open(cfg.Audit.File(cfg.DataDir), audit.Options{MaxBytes: cfg.Audit.MaxBytes, Keep: cfg.Audit.Keep, Logger: log.Named("audit")})
		if err != nil {
			n.proxy.Close()
			store.Close()
			return nil, err
		}
		n.metrics.Gauge("berth_audit_dropped_events", "Audit events dropped because the writer was behind.", func() float64 { return float64(n.audit.Dropped()) })
	}
	n.metrics.Gauge("berth_store_bytes", "Bytes of committed blobs in the store.", func() float64 { return float64(store.Stats().BlobBytes) })
	n.metrics.Gauge("berth_store_blobs", "Committed blobs in the store.", func() float64 { return float64(store.Stats().Blobs) })
	n.metrics.Gauge("berth_fills_in_flight", "Blob fills from upstreams running now.", func() float64 { return float64(n.proxy.InFlight()) })
	return n, nil
}

func (n *node) close() {
	n.admin.Close()
	n.proxy.Close()
	if n.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.audit.Close(ctx)
	}
	n.store.Close()
}

// observe is the registry's per-request hook: metrics and the audit log.
func (n *node) observe(info registry.RequestInfo) {
	n.metrics.ObserveRequest(info)
	if n.audit != nil {
		if e, ok := audit.FromRequest(info, time.Now()); ok {
			n.audit.Log(e)
		}
	}
}

// registryHandler is the registry API with its guard, limiter, logger and
// metrics, and the token endpoint when auth is on.
func (n *node) registryHandler() http.Handler {
	opts := []registry.Option{registry.WithLogger(n.log.Named("http")), registry.WithObserver(n.observe)}
	if rl := n.cfg.RateLimit; !rl.Disabled {
		lim := registry.NewLimiter(rl.RequestsPerSecond, rl.Burst)
		if len(rl.Users)+len(rl.Groups) > 0 {
			sec := n.sec
			lim.WithRates(func(key string) (float64, int, bool) {
				user, ok := strings.CutPrefix(key, "user:")
				if !ok {
					return 0, 0, false
				}
				if r, ok := rl.Users[user]; ok {
					return r.RequestsPerSecond, r.Burst, true
				}
				if sec != nil {
					for _, g := range sec.users.Groups(user) {
						if r, ok := rl.Groups[g]; ok {
							return r.RequestsPerSecond, r.Burst, true
						}
					}
				}
				return 0, 0, false
			})
		}
		opts = append(opts, registry.WithLimiter(lim))
	}
	if n.sec != nil {
		opts = append(opts, registry.WithGuard(n.sec.guard))
	}
	reg := registry.New(n.mirror, opts...)
	if n.sec == nil {
		return reg
	}
	mux := http.NewServeMux()
	mux.Handle("/token", n.sec.token)
	mux.Handle("/", reg)
	return mux
}

func serve(ctx context.Context, cfgPath string, cfg config.Config, log *zap.Logger) error {
	// SIGHUP reloads; registered before anything listens, so an early
	// SIGHUP never kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	n, err := newNode(ctx, cfg, log)
	if err != nil {
		return err
	}
	n.cfgPath = cfgPath
	defer n.close()
	// Background work ends (and is waited for) before the store closes.
	jctx, stopJanitor := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stopJanitor(); background.Wait() }()
	background.Add(2)
	go func() {
		defer background.Done()
		janitor(jctx, n.repos, n.reclaim, n.admin, cfg.Local, log.Named("janitor"))
	}()
	go func() { defer background.Done(); n.cap.Run(jctx) }()

	n.setHandler(n.registryHandler())
	handler := http.HandlerFunc(n.serveRegistry)
	servers := []*namedServer{{name: "registry", addr: cfg.Listen, srv: &http.Server{Handler: handler}}}
	if n.cert != nil {
		servers = append(servers, &namedServer{name: "registry-tls", addr: cfg.TLS.Listen,
			srv: &http.Server{Handler: handler, TLSConfig: n.cert.tlsConfig()}})
	}
	extra := map[string]http.Handler{}
	if n.cluster != nil {
		extra["GET /cluster/members"] = n.cluster.MembersHandler(n.ownedBytes)
		servers = append(servers, &namedServer{name: "peer", addr: cfg.Cluster.PeerAddr,
			srv: &http.Server{Handler: n.cluster.RequirePeer(n.proxy.PeerHandler(log.Named("peer"))), TLSConfig: n.peerTLS}})
	}
	if cfg.Admin.Listen != "" {
		api := n.admin.Handler()
		if n.sec != nil {
			api = n.sec.requireAdmin(cfg.Auth.AdminGroup, api)
		}
		extra[admin.Prefix] = api
		servers = append(servers, &namedServer{name: "admin", addr: cfg.Admin.Listen,
			srv: &http.Server{Handler: adminMux(cfg.Admin, n.prom, &n.ready, extra)}})
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		s.srv.ReadHeaderTimeout = 10 * time.Second
		s.srv.IdleTimeout = 2 * time.Minute
		s.srv.ErrorLog = zap.NewStdLog(log.Named(s.name))
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", s.name, err)
		}
		if s.srv.TLSConfig != nil {
			ln = tls.NewListener(ln, s.srv.TLSConfig)
		}
		go func() { errc <- s.srv.Serve(ln) }()
		log.Info("listening", zap.String("listener", s.name), zap.String("addr", ln.Addr().String()))
	}
	n.ready.Store(true)
	log.Info("berth is serving", zap.String("dataDir", cfg.DataDir), zap.Int("upstreams", len(cfg.Upstreams)), zap.String("version", version))
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY failed", zap.Error(err))
	}

wait:
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			n.reload(ctx)
		case <-ctx.Done():
			break wait
		}
	}
	n.ready.Store(false)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if n.cluster != nil {
		// Leave first, so peers stop choosing this node as an owner.
		lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.cluster.Shutdown(lctx); err != nil {
			log.Warn("leaving the cluster", zap.Error(err))
		}
		lcancel()
	}
	log.Info("shutting down; letting requests in flight finish", zap.Duration("timeout", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// All listeners drain at once. Peers get a short grace: a peer reading
	// a blob from this node resumes from the next owner at the byte reached.
	var drain sync.WaitGroup
	for _, s := range servers {
		drain.Add(1)
		go func() {
			defer drain.Done()
			ctx := sctx
			if s.name == "peer" {
				var c context.CancelFunc
				ctx, c = context.WithTimeout(sctx, peerDrain)
				defer c()
			}
			if err := s.srv.Shutdown(ctx); err != nil {
				log.Warn("requests still running at the shutdown timeout were cut", zap.String("listener", s.name), zap.Error(err))
				s.srv.Close()
			}
		}()
	}
	drain.Wait()
	for range servers {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	log.Info("stopped")
	return nil
}

// peerDrain bounds how long a stopping node serves its peers.
const peerDrain = 2 * time.Second

type namedServer struct {
	name, addr string
	srv        *http.Server
}

// janitor expires abandoned upload sessions and runs garbage collection on
// the configured schedule.
func janitor(ctx context.Context, repos *local.Repos, rc *reclaim.Reclaimer, api *admin.Service, cfg config.Local, log *zap.Logger) {
	var lifecycle <-chan time.Time
	if cfg.LifecycleInterval > 0 {
		t := time.NewTicker(cfg.LifecycleInterval)
		defer t.Stop()
		lifecycle = t.C
	}
	uploads := time.NewTicker(min(cfg.UploadTimeout, time.Hour))
	defer uploads.Stop()
	var gc <-chan time.Time
	if cfg.GCInterval > 0 {
		t := time.NewTicker(cfg.GCInterval)
		defer t.Stop()
		gc = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-uploads.C:
			_, _ = repos.ExpireUploads(ctx, cfg.UploadTimeout)
		case <-lifecycle:
			if _, err := api.RunLifecycle(ctx); err != nil && ctx.Err() == nil {
				log.Warn("lifecycle policies failed", zap.Error(err))
			}
		case <-gc:
			if _, err := rc.GC(ctx, cfg.GCGrace); err != nil && ctx.Err() == nil {
				log.Warn("garbage collection failed", zap.Error(err))
			}
		}
	}
}
