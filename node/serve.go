package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"berth/admin"
	"berth/config"
	"berth/registry"
	"berth/ui"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// Serve runs a node for cfg (loaded from cfg.Source.Path) until ctx ends:
// its listeners, background work, and SIGHUP reloads; then it leaves the
// cluster, drains the listeners and closes the node.
func Serve(ctx context.Context, cfg config.Config, opts Options) error {
	log := opts.Logger
	// SIGHUP reloads; registered before anything listens, so an early
	// SIGHUP never kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	n, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	cfg = n.Live().Config // with the overrides
	defer n.Close()
	warnOpen(cfg, log)
	// Background work ends (and is waited for) before the store closes.
	bctx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stopBackground(); background.Wait() }()
	background.Add(3)
	go func() { defer background.Done(); n.janitor(bctx) }()
	go func() { defer background.Done(); n.cap.Run(bctx) }()
	n.sync.Start()
	background.Add(1)
	go func() { defer background.Done(); n.repl.Run(bctx) }()
	go func() { defer background.Done(); n.ui.Run(bctx) }()
	background.Add(1)
	go func() { defer background.Done(); n.admin.Run(bctx) }()
	if n.owned != nil {
		background.Add(1)
		go func() { defer background.Done(); n.owned.Run(bctx) }()
	}

	servers := n.servers(cfg)
	lns, err := listenAll(servers, log)
	if err != nil {
		return err
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() { errc <- s.srv.Serve(lns[i]) }()
	}
	n.ready.Store(true)
	log.Info("berth is serving", zap.String("dataDir", cfg.DataDir), zap.Int("upstreams", len(cfg.Upstreams)), zap.String("version", opts.Version))
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY failed", zap.Error(err))
	}
wait:
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			_ = n.Reload(ctx) // logged and reported by Reload
		case <-ctx.Done():
			break wait
		}
	}
	return n.shutdown(servers, errc, cfg.ShutdownTimeout)
}

// servers are the node's listeners: the registry (and its HTTPS twin), the
// peer API in a cluster, and the admin listener.
func (n *Node) servers(cfg config.Config) []*namedServer {
	servers := []*namedServer{{name: "registry", addr: cfg.Listen, srv: &http.Server{Handler: n.handler}}}
	if n.cert != nil {
		servers = append(servers, &namedServer{name: "registry-tls", addr: cfg.TLS.Listen,
			srv: &http.Server{Handler: n.handler, TLSConfig: n.cert.tlsConfig()}})
	}
	if n.cluster != nil {
		servers = append(servers, &namedServer{name: "peer", addr: cfg.Cluster.PeerAddr,
			srv: &http.Server{Handler: n.cluster.RequirePeer(n.proxy.PeerHandler(n.log.Named("peer"), registry.WithShaper(n.shaper))), TLSConfig: n.peerTLS,
				ReadTimeout: smallBodyTimeout}})
	}
	if cfg.Admin.Listen != "" {
		servers = append(servers, &namedServer{name: "admin", addr: cfg.Admin.Listen,
			srv: &http.Server{Handler: n.AdminHandler(), ReadTimeout: smallBodyTimeout}})
	}
	for _, s := range servers {
		s.conns = n.connLimiter(s.name, s.srv.TLSConfig)
	}
	return servers
}

// AdminHandler is the admin listener: metrics and health, open to
// monitoring; and, behind the live admin guard (with auth on, members of
// the admin group only), the config in force, cluster members, profiles,
// the admin API and the status page (/ui/).
func (n *Node) AdminHandler() http.Handler {
	// The admin API is audited outside its guard, so a refused login is
	// recorded with the user it presented.
	extra := map[string]http.Handler{
		"GET /config": n.requireAdmin(http.HandlerFunc(n.serveConfigStatus)),
		admin.Prefix:  n.audited(n.requireAdmin(n.admin.Handler()), adminAction),
		ui.Prefix:     n.requireAdmin(n.ui.Handler()),
	}
	// Bundles stream; they are served beside the JSON operations.
	extra["POST "+admin.Prefix+"export"] = n.audited(n.requireAdmin(n.admin.ExportHandler()), adminAction)
	extra["POST "+admin.Prefix+"import"] = n.audited(n.requireAdmin(n.admin.ImportHandler()), adminAction)
	extra["POST "+admin.Prefix+"import-vulndb"] = n.audited(n.requireAdmin(n.admin.ImportVulnDBHandler()), adminAction)
	if n.cluster != nil {
		extra["GET /cluster/members"] = n.requireAdmin(n.cluster.MembersHandler(n.owned.Figures))
		extra["GET /cluster/clocks"] = n.requireAdmin(n.cluster.ClocksHandler())
	}
	return hostGuarded(adminMux(n.Live().Config.Admin, n.prom, &n.ready, n.requireAdmin, extra))
}

// hostGuarded refuses, on a loopback admin listener, every request that
// names a host that is not loopback (DNS rebinding: a web page the
// operator opened must not reach the admin API, import, the config or
// the profiles), except the monitoring endpoints, which scrapers may
// reach under any name.
func hostGuarded(mux http.Handler) http.Handler {
	guarded := admin.HostGuard(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics", "/healthz", "/readyz":
			mux.ServeHTTP(w, r)
		default:
			guarded.ServeHTTP(w, r)
		}
	})
}

// shutdown leaves the cluster first, so peers stop choosing this node as
// an owner, then drains every listener at once. Peers get a short grace:
// a peer reading a blob from this node resumes from the next owner at the
// byte reached.
func (n *Node) shutdown(servers []*namedServer, errc <-chan error, timeout time.Duration) error {
	n.ready.Store(false)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if n.cluster != nil {
		lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.cluster.Shutdown(lctx); err != nil {
			n.log.Warn("leaving the cluster", zap.Error(err))
		}
		lcancel()
	}
	n.log.Info("shutting down; letting requests in flight finish", zap.Duration("timeout", timeout))
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
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
				n.log.Warn("requests still running at the shutdown timeout were cut", zap.String("listener", s.name), zap.Error(err))
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
	n.log.Info("stopped")
	return nil
}

// smallBodyTimeout bounds reading a whole request on the listeners whose
// requests are small (admin, peer); the registry's upload bodies are
// paced instead (registry.WithBodyPace).
const smallBodyTimeout = 30 * time.Second

// peerDrain bounds how long a stopping node serves its peers.
const peerDrain = 2 * time.Second

type namedServer struct {
	name, addr string
	srv        *http.Server
	// conns wraps the server's TCP listener to cap its connections; nil:
	// no caps (tests that build servers by hand).
	conns func(net.Listener) net.Listener
}

// listenAll binds every server's listener before any serves, so that a
// port that is taken fails the start before the node answered anything
// (a node whose admin port was taken served /v2/ until it exited); on an
// error it closes the listeners it bound.
func listenAll(servers []*namedServer, log *zap.Logger) ([]net.Listener, error) {
	var lns []net.Listener
	for _, s := range servers {
		ln, err := s.listen(log)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func (s *namedServer) listen(log *zap.Logger) (net.Listener, error) {
	s.srv.ReadHeaderTimeout = 10 * time.Second
	s.srv.IdleTimeout = 2 * time.Minute
	s.srv.ErrorLog = zap.NewStdLog(log.Named(s.name))
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", s.name, err)
	}
	if s.conns != nil {
		ln = s.conns(ln)
	}
	if s.srv.TLSConfig != nil {
		ln = tls.NewListener(ln, s.srv.TLSConfig)
	}
	log.Info("listening", zap.String("listener", s.name), zap.String("addr", ln.Addr().String()))
	return ln, nil
}

// janitor expires abandoned upload sessions, and runs lifecycle policies
// and garbage collection on their schedules, each as the config in force
// sets it when its turn comes (0 turns lifecycle or GC off).
func (n *Node) janitor(ctx context.Context) {
	jobs := []struct {
		every func(config.Local) time.Duration
		run   func(context.Context, config.Local) error
		what  string
		next  time.Time
	}{
		{what: "upload expiry", every: func(c config.Local) time.Duration { return min(c.UploadTimeout, time.Hour) },
			run: func(ctx context.Context, c config.Local) error {
				_, err := n.repos.ExpireUploads(ctx, c.UploadTimeout)
				return err
			}},
		{what: "lifecycle policies", every: func(c config.Local) time.Duration { return c.LifecycleInterval },
			run: func(ctx context.Context, _ config.Local) error { _, err := n.admin.RunLifecycle(ctx); return err }},
		{what: "garbage collection", every: func(c config.Local) time.Duration { return c.GCInterval },
			run: func(ctx context.Context, c config.Local) error { _, err := n.reclaim.GC(ctx, c.GCGrace); return err }},
	}
	for {
		now := time.Now()
		cfg := n.Live().Config.Local
		wake := now.Add(time.Hour) // re-read the schedule at least hourly
		for i := range jobs {
			j := &jobs[i]
			every := j.every(cfg)
			if every <= 0 {
				j.next = time.Time{}
				continue
			}
			if j.next.IsZero() || j.next.After(now.Add(every)) {
				j.next = now.Add(every)
			}
			if !now.Before(j.next) {
				if err := j.run(ctx, cfg); err != nil && ctx.Err() == nil {
					n.log.Warn(j.what+" failed", zap.Error(err))
				}
				j.next = time.Now().Add(every)
			}
			if j.next.Before(wake) {
				wake = j.next
			}
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// serveConfigStatus reports the config in force and the last reload: what
// an operator checks after `systemctl reload`.
func (n *Node) serveConfigStatus(w http.ResponseWriter, r *http.Request) {
	src := n.Live().Config.Source
	body := struct {
		Path       string        `json:"path"`
		Hash       string        `json:"hash"`
		LoadedAt   time.Time     `json:"loadedAt"`
		LastReload *reloadStatus `json:"lastReload"`
	}{src.Path, src.Hash, src.LoadedAt.UTC(), n.lastReload.Load()}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}
