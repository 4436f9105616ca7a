package metrics

import "github.com/prometheus/client_golang/prometheus"

// EndpointSample is the health of one endpoint of an upstream rule, read
// at scrape time.
type EndpointSample struct {
	Upstream, Endpoint string
	// Up is false while the endpoint is set aside after failures.
	Up bool
	// Failures counts consecutive connection failures and 5xx answers.
	Failures int
	// BackoffSeconds is the time left in a backoff after a 429 or a quota
	// reported spent (0: none).
	BackoffSeconds float64
	Requests       int64
}

// Endpoints registers the per-endpoint series of the upstreams' endpoints,
// labelled upstream and endpoint, read from read at scrape time.
func (m *Metrics) Endpoints(read func() []EndpointSample) {
	m.reg.MustRegister(&endpointCollector{read: read,
		up: prometheus.NewDesc("berth_upstream_endpoint_up",
			"1 while an upstream endpoint is healthy; 0 while it is set aside after connection failures or 5xx answers (the rule's other endpoints are tried first).",
			[]string{"upstream", "endpoint"}, nil),
		failures: prometheus.NewDesc("berth_upstream_endpoint_consecutive_failures",
			"Connection failures and 5xx answers of an upstream endpoint since its last good answer.", []string{"upstream", "endpoint"}, nil),
		backoff: prometheus.NewDesc("berth_upstream_endpoint_backoff_seconds",
			"Seconds until an upstream endpoint that answered 429 or reported its quota spent may be asked again.", []string{"upstream", "endpoint"}, nil),
		requests: prometheus.NewDesc("berth_upstream_endpoint_requests_total",
			"HTTP requests Berth sent to an upstream endpoint, the token dance included.", []string{"upstream", "endpoint"}, nil),
	})
}

type endpointCollector struct {
	read                            func() []EndpointSample
	up, failures, backoff, requests *prometheus.Desc
}

func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.failures, c.backoff, c.requests} {
		ch <- d
	}
}

func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.read() {
		up := 0.0
		if s.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, s.Upstream, s.Endpoint)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.GaugeValue, float64(s.Failures), s.Upstream, s.Endpoint)
		ch <- prometheus.MustNewConstMetric(c.backoff, prometheus.GaugeValue, s.BackoffSeconds, s.Upstream, s.Endpoint)
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Requests), s.Upstream, s.Endpoint)
	}
}

// UpstreamPaced registers, for one upstream, the seconds its blob
// downloads waited for a bandwidth cap (its upstreamBandwidth or the
// node's), read at scrape time.
func (m *Metrics) UpstreamPaced(upstream string, seconds func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "berth_upstream_bandwidth_throttled_seconds_total",
		Help:        "Seconds an upstream's blob downloads waited for a bandwidth cap (the rule's upstreamBandwidth or the node's); summed over concurrent downloads.",
		ConstLabels: prometheus.Labels{"upstream": upstream}}, seconds))
}

// Counter registers a counter whose value is read at scrape time.
func (m *Metrics) Counter(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}
