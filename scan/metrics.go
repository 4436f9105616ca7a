package scan

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"berth/internal/recompute"
	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// vulnSchedule is when berth_image_vulnerabilities is recomputed: its
// totals take a pass over every image record (an image deleted from every
// repository drops out), so a scrape never computes them; the scanner's
// loop does, when a scan recorded new counts (seen within 2 s), every
// minute (deleted images; nothing tells the scanner of those), and no
// sooner than 2 s and 20 times the last pass's duration after the last.
var vulnSchedule = recompute.Schedule{CheckEvery: 2 * time.Second, MinGap: 2 * time.Second, CostFactor: 20, MaxAge: time.Minute}

// metrics are the scanner's Prometheus series.
type metrics struct {
	duration prometheus.Histogram
	scans    *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	depth    prometheus.Gauge
	vulns    *prometheus.Desc
	// walk calls fn for every image record of the store: only the
	// manifests some repository holds are counted. Tests wrap it to count.
	walk func(ctx context.Context, fn func(digest string) error) error
	log  *zap.Logger

	mu sync.Mutex
	// counts are the findings by severity of each scanned image (not
	// index) manifest's latest record, for berth_image_vulnerabilities;
	// gen counts their changes.
	counts map[string]map[string]int
	gen    uint64

	// totals are what the last pass found (nil before the first);
	// summed is the gen it started from (the loop's goroutine only).
	totals atomic.Pointer[map[string]int]
	summed uint64
	loop   *recompute.Loop
}

func newMetrics(reg prometheus.Registerer, st *store.Store, now func() time.Time, log *zap.Logger) *metrics {
	m := &metrics{log: log,
		walk: func(ctx context.Context, fn func(digest string) error) error {
			return st.Sweep().Images(ctx, func(_ store.RepoKey, digest string) error { return fn(digest) })
		},
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
	m.loop = recompute.New(vulnSchedule, now, m.changed, m.refresh)
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
	m.gen++
	if r.Index || r.Status != StatusComplete {
		delete(m.counts, r.Digest)
		return
	}
	m.counts[r.Digest] = r.Counts()
}

// changed reports whether counts changed since the last pass started.
func (m *metrics) changed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen != m.summed
}

// refresh recomputes the totals a scrape serves.
func (m *metrics) refresh(ctx context.Context) error {
	totals, err := m.sum(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("computing berth_image_vulnerabilities", zap.Error(err))
		}
		return err
	}
	m.totals.Store(&totals)
	return nil
}

type vulnCollector struct{ m *metrics }

func (c vulnCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.vulns }

// Collect serves the last pass's totals, none before the first.
func (c vulnCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.m.totals.Load()
	if p == nil {
		return
	}
	for _, sev := range Severities {
		ch <- prometheus.MustNewConstMetric(c.m.vulns, prometheus.GaugeValue, float64((*p)[sev]), sev)
	}
}

// sum is the findings by severity summed over the scanned manifests
// some repository still holds: a record outlives its image (it is per
// digest, and a push of the same digest again finds it), but an image
// deleted from every repository is no longer counted. One pass over the
// image records (vulnSchedule says when); each digest counts once however many
// repositories hold it.
func (m *metrics) sum(ctx context.Context) (map[string]int, error) {
	m.mu.Lock()
	m.summed = m.gen
	counts := make(map[string]map[string]int, len(m.counts))
	for d, c := range m.counts {
		counts[d] = c
	}
	m.mu.Unlock()
	out := map[string]int{}
	if len(counts) == 0 {
		return out, nil
	}
	err := m.walk(ctx, func(digest string) error {
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
