// Package node builds and runs one Berth node: it opens the store, makes
// the backends (local repositories, the pull-through proxy, their
// composition), the cluster, the admin API, audit and metrics, holds the
// live configuration (Runtime) that a reload swaps, serves the listeners,
// and unwinds exactly what it started in Close.
package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"berth/admin"
	"berth/audit"
	"berth/bundle"
	"berth/cluster"
	"berth/config"
	"berth/local"
	"berth/metrics"
	"berth/mirror"
	"berth/proxy"
	"berth/reclaim"
	"berth/registry"
	"berth/replicate"
	"berth/scan"
	"berth/store"
	"berth/syncer"
	"berth/ui"
	"berth/upstream"
	"berth/vulndb"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// Node is one running Berth.
type Node struct {
	log     *zap.Logger
	path    string // the config file, re-read by Reload; "" for the built-in defaults
	version string
	// overrides apply the command line to every config loaded.
	overrides func(*config.Config)

	// rt is the runtime in force; see Runtime.
	rt         atomic.Pointer[Runtime]
	lastReload atomic.Pointer[reloadStatus]

	prom    *prometheus.Registry
	metrics *metrics.Metrics
	store   *store.Store
	reclaim *reclaim.Reclaimer
	cap     *reclaim.Capacity
	repos   *local.Repos
	proxy   *proxy.Proxy
	mirror  *mirror.Mirror
	admin   *admin.Service
	sync    *syncer.Syncer
	repl    *replicate.Replicator
	backend replicating // the mirror, queueing pushes for replication
	ui      *ui.Page
	audit   *audit.Log       // nil when audit is off
	cluster *cluster.Cluster // nil for a single node
	owned   *ownedTracker    // the members' owned bytes, for /cluster/members; nil for a single node
	peerTLS *tls.Config      // the peer listener's mutual TLS, nil without
	cert    *certificate     // the HTTPS listener's, nil without
	limiter *registry.Limiter
	shaper  *registry.Shaper // serveBandwidth and maxBlobStreams, per client
	handler http.Handler     // the registry API and the token endpoint
	vulndb  *vulndb.DB       // the vulnerability database (scanning)
	vsync   *vulnSync        // imports scanning.vulnDB
	scan    *scan.Scanner    // the image scanner's pool

	upMu sync.Mutex
	ups  map[string]*upstream.Upstream // current client per upstream name, for metrics
	bw   bandwidth                     // the upstream bandwidth caps, kept across reloads

	ready atomic.Bool
	// closers unwind what New started, last first.
	closers []func()
}

// Options are what a node needs beside its configuration.
type Options struct {
	Logger *zap.Logger
	// Version is the build's version, told to cluster peers.
	Version string
	// Overrides, when set, is applied to every config the node loads
	// (command-line flags such as --listen), at start and on reload.
	Overrides func(*config.Config)
}

// New opens the store and builds a node for cfg; Reload re-reads the file
// cfg came from (cfg.Source.Path; none for the built-in defaults). On
// error, everything already started is closed again.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *Node, err error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	n := &Node{log: log, path: cfg.Source.Path, version: opts.Version, overrides: opts.Overrides, prom: prometheus.NewRegistry()}
	if n.overrides != nil {
		n.overrides(&cfg)
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	warnReadableSecrets(log, cfg)
	n.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.metrics = metrics.New(n.prom)
	enc, err := storeEncryption(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	if n.store, err = store.Open(ctx, cfg.DataDir, store.Options{HotManifestBytes: cfg.Cache.HotManifestBytes, Logger: log.Named("store"), Encryption: enc}); err != nil {
		return nil, err
	}
	n.closers = append(n.closers, func() { n.store.Close() })
	n.reclaim = reclaim.New(n.store, reclaim.Options{Logger: log.Named("reclaim")})
	n.repos = local.New(n.store, local.Options{
		AutoCreate: cfg.Local.AutoCreate, DefaultMutability: cfg.Local.DefaultMutability, Logger: log.Named("local"),
		Reclaim: n.reclaim,
	})
	n.cap = n.reclaim.Capacity(reclaim.CapacityOptions{Dir: cfg.DataDir, Settings: n.capacityLimits, Pinned: n.pinned,
		OnEvict: func(k int) { n.metrics.Evictions.Add(float64(k)) }, Logger: log.Named("capacity")})
	if err := n.startCluster(ctx, cfg); err != nil {
		return nil, err
	}
	n.proxy = proxy.New(n.store, func() *upstream.Router { return n.Live().Router }, proxy.Options{FillTimeout: cfg.Cache.FillTimeout,
		Logger: log.Named("proxy"), Metrics: n.metrics, Cluster: n.cluster, Reserve: n.cap.Reserve, ManifestStored: n.manifestPulled})
	n.closers = append(n.closers, n.proxy.Close)
	n.mirror = mirror.New(n.proxy, n.repos, n.store, mirror.Options{Reserve: n.cap.Reserve,
		MaxUploadBytes: func() int64 { return n.Live().Config.Local.MaxUploadBytes },
		MaxOpenUploads: func() int { return n.Live().Config.Local.MaxOpenUploads }})
	// Before the runtime: its token endpoint admits by these buckets too.
	n.limiter = registry.NewLimiter(cfg.RateLimit.RequestsPerSecond, cfg.RateLimit.Burst)
	rt, err := n.build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	n.sync = syncer.New(syncer.Options{Backend: n.mirror, Routes: func() *upstream.Router { return n.Live().Router },
		Rules: func() []config.SyncRule { return n.Live().Config.Sync }, Store: n.store, Registerer: n.prom,
		Logger: log.Named("sync")})
	n.closers = append(n.closers, n.sync.Close)
	n.repl = replicate.New(replicate.Options{Store: n.store, Rules: func() []config.Replication { return n.Live().Config.Replication },
		Registerer: n.prom, Logger: log.Named("replication")})
	n.backend = replicating{Mirror: n.mirror, r: n.repl, log: log.Named("replication"), pushed: n.manifestPushed}
	n.shaper = registry.NewShaper(func() registry.ShapeLimits {
		c := n.Live().Config
		return registry.ShapeLimits{BytesPerSecond: c.ServeBandwidth, MaxStreams: c.MaxBlobStreams}
	})
	n.apply(rt)
	n.reloaded(nil)
	if err := n.openVulnDB(ctx); err != nil {
		return nil, err
	}
	if err := n.openScanner(ctx, cfg); err != nil {
		return nil, err
	}
	n.admin = admin.New(admin.Options{Store: n.store, Repos: n.repos, Reclaim: n.reclaim, Live: n.adminLive,
		Stats: admin.PromStats(n.prom), OnRepositoryPolicy: n.applyRepositoryPolicy, OnRevokeTokens: n.revokeTokens,
		OnRulesChanged: func() { n.reloadRules(context.WithoutCancel(ctx)) }, Sync: n.sync, Logger: log.Named("admin"),
		Bundles: admin.Bundles{Store: bundle.Store{Store: n.store, Routes: func() *upstream.Router { return n.Live().Router }, Now: time.Now,
			Reserve: n.cap.Reserve, CheckLocal: n.repos.CheckPut, Settle: n.proxy.WaitFills},
			Pusher: n.backend, SyncRefs: n.sync.Refs, VerifyKeys: func() ([]ed25519.PublicKey, error) { return loadVerifyKeys(n.Live().Config.Bundles) }}, Replication: n.repl.ImageStatus,
		VulnDB: n.vulndb, Scan: admin.ScanOptions{Scanner: n.scan, Tags: n.store},
		RotateKey: n.rotateKeyVerb(cfg)})
	n.closers = append(n.closers, n.admin.Close)
	if cfg.TLS.Listen != "" {
		if n.cert, err = newCertificate(cfg.TLS); err != nil {
			return nil, err
		}
	}
	if err := n.openAudit(cfg); err != nil {
		return nil, err
	}
	n.ui = n.statusPage(cfg)
	n.handler = n.registryHandler()
	n.gauges()
	return n, nil
}

// statusPage is the admin listener's /ui/: metrics from the node's
// registry, fills from the proxy, upstreams from the runtime in force.
func (n *Node) statusPage(cfg config.Config) *ui.Page {
	o := ui.Options{Gatherer: n.prom, Fills: n.proxy.Fills, Rules: func() []upstream.Rule {
		var out []upstream.Rule
		for _, u := range n.Live().Router.Upstreams() {
			out = append(out, u.Rule)
		}
		return out
	}}
	if n.audit != nil {
		o.AuditFile = cfg.Audit.File(cfg.DataDir)
	}
	return ui.New(o)
}

// Close unwinds what New started, in reverse: the admin API's previews,
// fills in flight, the audit log, the store. Leaving the cluster is
// Serve's (it must come before the listeners drain).
func (n *Node) Close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
}

func (n *Node) startCluster(ctx context.Context, cfg config.Config) error {
	if !cfg.Cluster.Enabled() {
		return nil
	}
	stats := func() cluster.NodeStats {
		st := n.store.Stats()
		return cluster.NodeStats{StoredBytes: st.BlobBytes, Blobs: st.Blobs}
	}
	var clientTLS *tls.Config
	if cfg.Cluster.TLS.Enabled() {
		var err error
		if n.peerTLS, clientTLS, err = peerTLSConfigs(cfg.Cluster.TLS); err != nil {
			return err
		}
	}
	owned := newOwnedTracker(n.store, n.ownerNames, n.log.Named("cluster"))
	c, err := startCluster(ctx, cfg.Cluster, clientTLS, stats, n.version, n.log.Named("cluster"), cluster.WithOwnersChanged(owned.Changed))
	if err != nil {
		return err
	}
	n.cluster, n.owned = c, owned
	n.metrics.Gauge("berth_cluster_members", "Alive members of the cluster, this node included.", func() float64 {
		alive := 0
		for _, m := range c.Members() {
			if m.State == cluster.StateAlive {
				alive++
			}
		}
		return float64(alive)
	})
	return nil
}

func (n *Node) openAudit(cfg config.Config) error {
	if cfg.Audit.Disabled {
		return nil
	}
	a, err := audit.Open(cfg.Audit.File(cfg.DataDir), audit.Options{MaxBytes: cfg.Audit.MaxBytes, Keep: cfg.Audit.Keep, Logger: n.log.Named("audit")})
	if err != nil {
		return err
	}
	n.audit = a
	n.closers = append(n.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	n.metrics.Gauge("berth_audit_dropped_events", "Audit events dropped because the writer was behind.", func() float64 { return float64(a.Dropped()) })
	return nil
}

func (n *Node) gauges() {
	n.metrics.Counter("berth_serve_throttled_seconds_total",
		"Seconds blob streams to clients and peers waited for their client's serveBandwidth or a maxBlobStreams slot; summed over concurrent streams.",
		func() float64 { return n.shaper.Throttled().Seconds() })
	n.metrics.Gauge("berth_store_bytes", "Bytes of committed blobs in the store.", func() float64 { return float64(n.store.Stats().BlobBytes) })
	n.metrics.Gauge("berth_store_blobs", "Committed blobs in the store.", func() float64 { return float64(n.store.Stats().Blobs) })
	n.metrics.Gauge("berth_fills_in_flight", "Blob fills from upstreams running now.", func() float64 { return float64(n.proxy.InFlight()) })
	n.metrics.Gauge("berth_config_last_reload_successful", "1 when the last config reload (or the start) put the file in force, 0 when it was refused.", func() float64 {
		if st := n.lastReload.Load(); st != nil && st.Successful {
			return 1
		}
		return 0
	})
	n.metrics.Gauge("berth_config_last_reload_success_timestamp_seconds", "When the config in force was loaded, in Unix seconds.", func() float64 {
		return float64(n.Live().Config.Source.LoadedAt.UnixNano()) / 1e9
	})
}

// observe is the registry's per-request hook: metrics and the audit log.
func (n *Node) observe(info registry.RequestInfo) {
	n.metrics.ObserveRequest(info)
	if n.audit != nil {
		if e, ok := audit.FromRequest(info, time.Now()); ok {
			n.audit.Log(e)
		}
	}
}

// registryHandler is the registry API, built once: its guard, limiter
// rates and token endpoint read the runtime in force on every request.
func (n *Node) registryHandler() http.Handler {
	reg := registry.New(n.backend, registry.WithLogger(n.log.Named("http")), registry.WithObserver(n.observe),
		registry.WithLimiter(n.limiter), registry.WithGuard(liveGuard{n}), registry.WithShaper(n.shaper))
	token := n.audited(http.HandlerFunc(n.serveToken), tokenAction)
	// Two routes need no ServeMux, whose pattern matching was a tenth of
	// a warm manifest request's handling. A path it would have cleaned
	// and redirected reaches the registry, which refuses it.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			token.ServeHTTP(w, r)
			return
		}
		reg.ServeHTTP(w, r)
	})
}

// Handler is the registry API with the token endpoint.
func (n *Node) Handler() http.Handler { return n.handler }

// resolver is how the token endpoint resolves scopes: as the registry does.
func (n *Node) resolver() registry.Resolver { return n.mirror }
