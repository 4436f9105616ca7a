package scan

import (
	"context"
	"sync"

	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scanner's Prometheus series.
type metrics struct {
	duration prometheus.Histogram
	scans    *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	depth    prometheus.Gauge
	vulns    *prometheus.Desc
	// st is read at every collection: only the manifests an image record
	// of some repository holds are counted.
	st *store.Store

	mu sync.Mutex
	// counts are the findings by severity of each scanned image (not
	// index) manifest's latest record, for berth_image_vulnerabilities.
	counts map[string]map[string]int
}

func newMetrics(reg prometheus.Registerer, st *store.Store) *metrics {
	m := &metrics{st: st,
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_image_scan_duration_seconds",
			Help: "How long image scans took (extraction and matching).", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_image_scans_total",
			Help: "Image scans run, by outcome (COMPLETE, FAILED)."}, []string{"status"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_image_scan_dropped_total",
			Help: "Scan triggers dropped because the scan queue was full, by trigger."}, []string{"reason"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_image_scan_queue_depth",
			Help: "Scans waiting for a worker."}),
		vulns: prometheus.NewDesc("berth_image_vulnerabilities",
			"Findings of the latest scan of every stored image manifest, by severity.", []string{"severity"}, nil),
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
	totals, err := c.m.totals(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.m.vulns, err)
		return
	}
	for _, sev := range Severities {
		ch <- prometheus.MustNewConstMetric(c.m.vulns, prometheus.GaugeValue, float64(totals[sev]), sev)
	}
}

// totals are the findings by severity summed over the scanned manifests
// some repository still holds: a record outlives its image (it is per
// digest, and a push of the same digest again finds it), but an image
// deleted from every repository is no longer counted. One pass over the
// image records per collection; each digest counts once however many
// repositories hold it.
func (m *metrics) totals(ctx context.Context) (map[string]int, error) {
	m.mu.Lock()
	counts := make(map[string]map[string]int, len(m.counts))
	for d, c := range m.counts {
		counts[d] = c
	}
	m.mu.Unlock()
	out := map[string]int{}
	if len(counts) == 0 {
		return out, nil
	}
	err := m.st.Sweep().Images(ctx, func(_ store.RepoKey, digest string) error {
		c, ok := counts[digest]
		if !ok {
			return nil
		}
		delete(counts, digest) // counted once
		for sev, n := range c {
			out[sev] += n
		}
		return nil
	})
	return out, err
}
