package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"berth/cache"
	"berth/local"
	"berth/proxy"
	"berth/registry"
	"berth/upstream"

	"github.com/coreos/go-systemd/v22/daemon"
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
	cfg, err := LoadConfig(*path)
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
	return serve(ctx, cfg, log)
}

func newLogger(c LogConfig) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	return zc.Build()
}

func serve(ctx context.Context, cfg Config, log *zap.Logger) error {
	store, err := cache.Open(ctx, cfg.DataDir, cache.Options{HotManifestBytes: cfg.Cache.HotManifestBytes, Logger: log.Named("cache")})
	if err != nil {
		return err
	}
	defer store.Close()

	var ups []*upstream.Upstream
	for _, r := range cfg.Upstreams {
		u, err := upstream.New(r, nil, log.Named("upstream"))
		if err != nil {
			return err
		}
		ups = append(ups, u)
	}
	px := proxy.New(store, upstream.NewRouter(ups, cfg.Local.Prefixes...), proxy.Options{FillTimeout: cfg.Cache.FillTimeout, Logger: log.Named("proxy")})
	defer px.Close()
	repos := local.New(store, local.Options{
		AutoCreate: cfg.Local.AutoCreate, DefaultMutability: cfg.Local.DefaultMutability, Logger: log.Named("local"),
	})
	mirror := proxy.NewMirror(px, repos)
	jctx, stopJanitor := context.WithCancel(ctx)
	defer stopJanitor()
	go janitor(jctx, repos, cfg.Local, log.Named("janitor"))

	opts := []registry.Option{registry.WithLogger(log.Named("http"))}
	if !cfg.RateLimit.Disabled {
		opts = append(opts, registry.WithLimiter(registry.NewLimiter(cfg.RateLimit.RequestsPerSecond, cfg.RateLimit.Burst)))
	}
	srv := &http.Server{
		Handler:           registry.New(mirror, opts...),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("berth is serving", zap.String("addr", ln.Addr().String()), zap.String("dataDir", cfg.DataDir),
		zap.Int("upstreams", len(ups)), zap.String("version", version))
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY failed", zap.Error(err))
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("shutting down; letting requests in flight finish", zap.Duration("timeout", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at the shutdown timeout were cut", zap.Error(err))
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// janitor expires abandoned upload sessions and runs garbage collection on
// the configured schedule.
func janitor(ctx context.Context, repos *local.Repos, cfg LocalConfig, log *zap.Logger) {
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
		case <-gc:
			if _, err := repos.GC(ctx, cfg.GCGrace); err != nil && ctx.Err() == nil {
				log.Warn("garbage collection failed", zap.Error(err))
			}
		}
	}
}
