package vulndb

import (
	"github.com/prometheus/client_golang/prometheus"
)

// dbMetrics are the database's series.
type dbMetrics struct {
	importSeconds prometheus.Histogram
	importErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, db *DB) *dbMetrics {
	m := &dbMetrics{
		importSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_vulndb_import_duration_seconds",
			Help:    "How long imports of the vulnerability database took, from start to publication.",
			Buckets: prometheus.ExponentialBuckets(0.1, 3, 9),
		}),
		importErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_vulndb_import_errors_total",
			Help: "Imports of the vulnerability database that failed (bad input, I/O); the database served stayed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.importSeconds, m.importErrors, &infoCollector{db: db,
			records: prometheus.NewDesc("berth_vulndb_records",
				"OSV records in the vulnerability database served, by ecosystem.", []string{"ecosystem"}, nil),
			age: prometheus.NewDesc("berth_vulndb_age_seconds",
				"Age of the vulnerability database served: seconds since its newest record was modified.", nil, nil),
			version: prometheus.NewDesc("berth_vulndb_version",
				"Version of the vulnerability database served (each import publishes the next; 0: none).", nil, nil),
		})
	}
	return m
}

// infoCollector reads the served version's Info at scrape time.
type infoCollector struct {
	db                    *DB
	records, age, version *prometheus.Desc
}

func (c *infoCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.age
	ch <- c.version
}

func (c *infoCollector) Collect(ch chan<- prometheus.Metric) {
	c.db.mu.RLock()
	info, version := c.db.info, c.db.version
	c.db.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(version))
	if version == 0 {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, c.db.age(info))
	for eco, n := range info.Ecosystems {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(n), eco)
	}
}
