// Package metrics defines Berth's Prometheus metrics. The registry they are
// registered with is passed in; nothing is global.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"berth/registry"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every collector Berth updates.
type Metrics struct {
	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	BytesServed     *prometheus.CounterVec
	RateLimited     prometheus.Counter
	Cache           *prometheus.CounterVec
	FillDuration    *prometheus.HistogramVec
	UpstreamReqs    *prometheus.CounterVec
	UpstreamErrors  *prometheus.CounterVec
	Evictions       prometheus.Counter
	ConnsRefused    *prometheus.CounterVec
	reg             prometheus.Registerer

	// The series a request updates, found once per label set: a label
	// lookup hashes and compares every value, on every request. Every
	// label is one of a few values the server picks (RequestInfo.Method is
	// registry.MethodName's), so these stay small.
	requests sync.Map // requestLabels → *requestSeries
	served   sync.Map // registry.Source → prometheus.Counter
	results  sync.Map // cacheLabels → prometheus.Counter
}

type requestLabels struct {
	kind   registry.Kind
	method string
	status int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type cacheLabels struct{ kind, result string }

// series returns the value m holds for key, made by mk the first time.
func series[K comparable, V any](m *sync.Map, key K, mk func() V) V {
	if v, ok := m.Load(key); ok {
		return v.(V)
	}
	v, _ := m.LoadOrStore(key, mk())
	return v.(V)
}

// New registers Berth's collectors with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total", Help: "Registry API requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_http_request_duration_seconds", Help: "Time to serve a registry API request, body included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		BytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_bytes_served_total", Help: "Response body bytes by where they came from (store, upstream, stale, peer, local).",
		}, []string{"source"}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_rate_limited_total", Help: "Requests refused with 429 by the per-client rate limit.",
		}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_cache_requests_total", Help: "Cached-namespace lookups by kind (manifest, tag, blob) and result (hit, miss, revalidated, stale).",
		}, []string{"kind", "result"}),
		FillDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_fill_duration_seconds", Help: "Duration of blob fills from upstreams, by upstream and result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"upstream", "result"}),
		UpstreamReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_upstream_requests_total", Help: "Requests Berth sent to upstreams, by upstream, method and status.",
		}, []string{"upstream", "method", "status"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_upstream_errors_total", Help: "Upstream requests that failed without an HTTP answer, by upstream.",
		}, []string{"upstream"}),
		Evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_evictions_total", Help: "Blobs evicted from the cache to stay under its capacity.",
		}),
		ConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_connections_refused_total",
			Help: "Connections answered TOOMANYREQUESTS and closed, by listener and the cap they were past (max, per-address).",
		}, []string{"listener", "reason"}),
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.BytesServed, m.RateLimited, m.Cache,
		m.FillDuration, m.UpstreamReqs, m.UpstreamErrors, m.Evictions, m.ConnsRefused)
	return m
}

// Gauge registers a gauge whose value is read at scrape time.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// ConnectionRefused counts a connection listener refused for reason.
func (m *Metrics) ConnectionRefused(listener, reason string) {
	m.ConnsRefused.WithLabelValues(listener, reason).Inc()
}

// ConnectionsOpen registers the gauge of the connections listener holds,
// read at scrape time.
func (m *Metrics) ConnectionsOpen(listener string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_connections_open",
		Help: "Connections a listener holds.", ConstLabels: prometheus.Labels{"listener": listener}}, f))
}

// UpstreamFuncs registers, for one upstream, a counter of the requests
// Berth refused itself to protect its quota, a gauge of the seconds left in
// its backoff, and a gauge of the last RateLimit-Remaining it sent (-1
// before it sent one), all read at scrape time.
func (m *Metrics) UpstreamFuncs(upstream string, throttled, backoff, remaining func() float64) {
	labels := prometheus.Labels{"upstream": upstream}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "berth_upstream_throttled_total",
			Help: "Requests to an upstream that Berth held back (rate limit or backoff).", ConstLabels: labels}, throttled),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_upstream_backoff_seconds",
			Help: "Seconds until an upstream that asked Berth to back off may be asked again.", ConstLabels: labels}, backoff),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_upstream_ratelimit_remaining",
			Help: "The last RateLimit-Remaining an upstream sent (pulls left in its window); -1 before it sent one.", ConstLabels: labels}, remaining),
	)
}

// ObserveRequest records a finished registry request; it is the registry
// server's observer.
func (m *Metrics) ObserveRequest(info registry.RequestInfo) {
	rs := series(&m.requests, requestLabels{info.Kind, info.Method, info.Status}, func() *requestSeries {
		route := info.Kind.String()
		return &requestSeries{
			count:    m.Requests.WithLabelValues(route, info.Method, strconv.Itoa(info.Status)),
			duration: m.RequestDuration.WithLabelValues(route, info.Method),
		}
	})
	rs.count.Inc()
	rs.duration.Observe(info.Duration.Seconds())
	if info.Bytes > 0 && info.Source != registry.SourceNone {
		series(&m.served, info.Source, func() prometheus.Counter {
			return m.BytesServed.WithLabelValues(string(info.Source))
		}).Add(float64(info.Bytes))
	}
	if info.Status == http.StatusTooManyRequests {
		m.RateLimited.Inc()
	}
}

// CacheResult counts a cached-namespace lookup.
func (m *Metrics) CacheResult(kind, result string) {
	if m != nil {
		series(&m.results, cacheLabels{kind, result}, func() prometheus.Counter {
			return m.Cache.WithLabelValues(kind, result)
		}).Inc()
	}
}

// Fill records a finished blob fill.
func (m *Metrics) Fill(upstream string, d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.FillDuration.WithLabelValues(upstream, result).Observe(d.Seconds())
}

// Transport counts the requests an upstream client sends through next.
func (m *Metrics) Transport(upstream string, next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil {
			m.UpstreamErrors.WithLabelValues(upstream).Inc()
			return nil, err
		}
		m.UpstreamReqs.WithLabelValues(upstream, r.Method, strconv.Itoa(resp.StatusCode)).Inc()
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
