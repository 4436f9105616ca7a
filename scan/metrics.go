package scan

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scanner's Prometheus series.
type metrics struct {
	duration prometheus.Histogram
	scans    *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	depth    prometheus.Gauge
	vulns    *prometheus.Desc

	mu sync.Mutex
	// counts are the findings by severity of each scanned image (not
	// index) manifest's latest record, for berth_image_vulnerabilities.
	counts map[string]map[string]int
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_image_scan_duration_seconds",
			Help: "How long image scans took (extraction and matching).", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_image_scans_total",
			Help: "Image scans run, by outcome (COMPLETE, FAILED)."}, []string{"status"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_image_scan_dropped_total",
			Help: "Scan triggers dropped because the scan queue was full, by trigger."}, []string{"reason"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_image_scan_queue_depth",
			Help: "Scans waiting for a worker."}),
		vulns: prometheus.NewDesc("berth_image_vulnerabilities",
			"Findings of the latest scan of every scanned image manifest, by severity.", []string{"severity"}, nil),
		counts: map[string]map[string]int{},
	}
	reg.MustRegister(m.duration, m.scans, m.dropped, m.depth, vulnCollector{m})
	return m
}

func (m *metrics) queued()   { m.depth.Inc() }
func (m *metrics) dequeued() { m.depth.Dec() }

// recorded keeps a record's severity counts (an index's are its
// platforms', which are counted themselves).
func (m *metrics) recorded(r *Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Index || r.Status != StatusComplete {
		delete(m.counts, r.Digest)
		return
	}
	m.counts[r.Digest] = r.Counts()
}

type vulnCollector struct{ m *metrics }

func (c vulnCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.vulns }

func (c vulnCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sev := range Severities {
		ch <- prometheus.MustNewConstMetric(c.m.vulns, prometheus.GaugeValue, float64(c.m.total(sev)), sev)
	}
}

// total is the findings of one severity summed over the images.
func (m *metrics) total(sev string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.counts {
		n += c[sev]
	}
	return n
}
