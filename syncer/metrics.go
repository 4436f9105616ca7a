package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// syncMetrics are the per-rule series.
type syncMetrics struct {
	runs    *prometheus.CounterVec
	images  *prometheus.CounterVec
	bytesC  *prometheus.CounterVec
	errorsC *prometheus.CounterVec
	last    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *syncMetrics {
	m := &syncMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_sync_runs_total", Help: "Sync rule runs, by rule and result (ok, or failed when the run had errors).",
		}, []string{"rule", "result"}),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_sync_images_total", Help: "Tags synced, by rule.",
		}, []string{"rule"}),
		bytesC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_sync_bytes_total", Help: "Manifest and blob bytes sync runs brought from upstreams, by rule.",
		}, []string{"rule"}),
		errorsC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_sync_errors_total", Help: "Errors of sync runs (a tag, a repository or a rule that failed), by rule.",
		}, []string{"rule"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_sync_last_run_timestamp_seconds", Help: "When the last run of a sync rule ended, in Unix seconds.",
		}, []string{"rule"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.images, m.bytesC, m.errorsC, m.last)
	}
	return m
}

func (m *syncMetrics) observe(rule string, run Run) {
	result := "ok"
	if len(run.Errors) > 0 {
		result = "failed"
	}
	m.runs.WithLabelValues(rule, result).Inc()
	m.last.WithLabelValues(rule).Set(float64(run.Finished.UnixNano()) / 1e9)
}

func (m *syncMetrics) image(rule string)          { m.images.WithLabelValues(rule).Inc() }
func (m *syncMetrics) bytes(rule string, n int64) { m.bytesC.WithLabelValues(rule).Add(float64(n)) }
func (m *syncMetrics) errors(rule string)         { m.errorsC.WithLabelValues(rule).Inc() }
