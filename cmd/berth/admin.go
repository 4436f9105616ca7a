package main

import (
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminConfig is the operator's listener: metrics, health, profiles and,
// later, the admin API. It is bound to loopback by default.
type AdminConfig struct {
	// Listen is host:port; empty turns the admin listener off.
	Listen string `yaml:"listen"`
	// Pprof exposes net/http/pprof under /debug/pprof/.
	Pprof bool `yaml:"pprof"`
}

// adminMux builds the admin listener's routes.
func adminMux(cfg AdminConfig, gatherer prometheus.Gatherer, ready *atomic.Bool, extra map[string]http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	return mux
}
