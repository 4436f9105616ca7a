// Package ui is the status page of the admin listener (/ui/): what an
// operator looks at in a browser. Its HTML, CSS and JavaScript are embedded
// in the binary (no CDN, no web fonts), so it works on an air-gapped host.
//
// The page reads two things: /ui/api/status, served here, which holds what
// the admin API does not (the counters /metrics exposes, read from the same
// Prometheus registry, their history, the fills in flight, each upstream's
// health, the tail of the audit log), and the admin API itself
// (repositories, images, lifecycle policies and their previews, the
// config's status, cluster members). Every action the page offers is an
// admin API call, so the guard and the audit log see it as any other.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"berth/proxy"
	"berth/upstream"

	"github.com/prometheus/client_golang/prometheus"
)

// Prefix is where the page is served.
const Prefix = "/ui/"

//go:embed assets
var assets embed.FS

// Options configure a Page.
type Options struct {
	// Gatherer is the node's Prometheus registry, the one /metrics serves.
	Gatherer prometheus.Gatherer
	// Fills lists the fills running and the last finished.
	Fills func() []proxy.FillStatus
	// Rules are the upstream rules in force.
	Rules func() []upstream.Rule
	// AuditFile is the audit log's path; "" when audit is off.
	AuditFile string
	// Interval between the samples of the history (default 10s); History
	// is how many are kept (default 360: an hour).
	Interval time.Duration
	History  int
	// Now is the clock (tests).
	Now func() time.Time
}

// Page serves the status page.
type Page struct {
	o Options

	mu      sync.Mutex
	history []Sample // oldest first
}

// New returns the page.
func New(o Options) *Page {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.History <= 0 {
		o.History = 360
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Fills == nil {
		o.Fills = func() []proxy.FillStatus { return nil }
	}
	if o.Rules == nil {
		o.Rules = func() []upstream.Rule { return nil }
	}
	return &Page{o: o}
}

// Run samples the counters for the history every Interval until ctx ends.
func (p *Page) Run(ctx context.Context) {
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	p.Sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Sample()
		}
	}
}

// Sample adds the counters as they are now to the history.
func (p *Page) Sample() {
	s := p.snapshot().Sample
	p.mu.Lock()
	defer p.mu.Unlock()
	p.history = append(p.history, s)
	if over := len(p.history) - p.o.History; over > 0 {
		p.history = append(p.history[:0], p.history[over:]...)
	}
}

// Handler serves the page's files under Prefix and its status at
// Prefix+"api/status". The caller guards it (with auth on: admins only).
func (p *Page) Handler() http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"api/status", p.serveStatus)
	static := http.StripPrefix(Prefix, http.FileServerFS(files))
	mux.Handle("GET "+Prefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No other origin may frame the page or load its scripts.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	}))
	return mux
}

// Status is what /ui/api/status answers.
type Status struct {
	Snapshot
	// History is the sampled counters, oldest first, ending with now.
	History []Sample `json:"history"`
	// Fills are the fills running, then the last finished.
	Fills []proxy.FillStatus `json:"fills"`
	// Audit is the tail of the audit log, oldest first; absent when audit
	// is off.
	Audit      []json.RawMessage `json:"audit"`
	AuditError string            `json:"auditError,omitempty"`
}

func (p *Page) serveStatus(w http.ResponseWriter, r *http.Request) {
	snap := p.snapshot()
	p.mu.Lock()
	hist := append(append(make([]Sample, 0, len(p.history)+1), p.history...), snap.Sample)
	p.mu.Unlock()
	st := Status{Snapshot: snap, History: hist, Fills: p.o.Fills(), Audit: []json.RawMessage{}}
	if st.Fills == nil {
		st.Fills = []proxy.FillStatus{}
	}
	st.Upstreams = upstreamHealth(st.Upstreams, p.o.Rules(), hist)
	if p.o.AuditFile != "" {
		lines, err := tailLines(p.o.AuditFile, auditLines)
		if err != nil {
			st.AuditError = err.Error()
		}
		st.Audit = lines
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}
