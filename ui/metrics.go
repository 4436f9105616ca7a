package ui

import (
	"fmt"
	"strconv"
	"time"

	"berth/admin"
	"berth/upstream"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Sample is the node's counters at one time: what the charts draw.
type Sample struct {
	Time time.Time `json:"time"`
	// Cache lookups by result and the share served from the store, as
	// describe-cache computes it (admin.CacheCounters).
	Hits        int64   `json:"hits"`
	Misses      int64   `json:"misses"`
	Revalidated int64   `json:"revalidated"`
	Stale       int64   `json:"stale"`
	HitRatio    float64 `json:"hitRatio"`
	// BytesServed is berth_bytes_served_total by source (store, upstream,
	// stale, peer, local).
	BytesServed map[string]float64 `json:"bytesServed"`
	// UpstreamFailures counts, per upstream, requests that failed without
	// an answer or were answered 429 or 5xx.
	UpstreamFailures map[string]float64 `json:"upstreamFailures"`
}

// Snapshot is every number the page shows that /metrics has, read from
// the same registry at one time.
type Snapshot struct {
	Sample
	StoreBytes     float64 `json:"storeBytes"`
	StoreBlobs     float64 `json:"storeBlobs"`
	FillsInFlight  float64 `json:"fillsInFlight"`
	EvictedBlobs   int64   `json:"evictedBlobs"`
	ClusterMembers float64 `json:"clusterMembers"`
	// ConfigReloadOK is berth_config_last_reload_successful.
	ConfigReloadOK bool       `json:"configReloadOk"`
	Upstreams      []Upstream `json:"upstreams"`
	// Vulnerabilities are berth_image_vulnerabilities by severity: the
	// latest scans' findings of the stored images; ScanQueue the scans
	// waiting (berth_image_scan_queue_depth).
	Vulnerabilities map[string]float64 `json:"vulnerabilities"`
	ScanQueue       float64            `json:"scanQueue"`
}

// Upstream is one upstream's state, from its berth_upstream_* series.
type Upstream struct {
	Name     string `json:"name"`
	Prefix   string `json:"prefix,omitempty"`
	Registry string `json:"registry,omitempty"`
	URL      string `json:"url,omitempty"`
	// Requests by status class ("2xx", "4xx", "429", "5xx", ...).
	Requests  map[string]float64 `json:"requests"`
	Errors    float64            `json:"errors"`
	Throttled float64            `json:"throttled"`
	// BackoffSeconds left; 0 when it does not back off.
	BackoffSeconds float64 `json:"backoffSeconds"`
	// RateLimitRemaining is the last RateLimit-Remaining it sent; absent
	// before it sent one.
	RateLimitRemaining *float64 `json:"rateLimitRemaining,omitempty"`
	FillsOK            float64  `json:"fillsOk"`
	FillsFailed        float64  `json:"fillsFailed"`
	// Health is "ok", "backing off" or "failing" (failures in the last
	// minute); Reason says why.
	Health string `json:"health"`
	Reason string `json:"reason,omitempty"`
}

// snapshot gathers the registry once and reads every number from it.
func (p *Page) snapshot() Snapshot {
	mfs, _ := p.o.Gatherer.Gather() // a partial gather still has the rest
	c := admin.PromStats(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil })).CacheCounters()
	s := Snapshot{Sample: Sample{Time: p.o.Now().UTC(), Hits: c.Hits, Misses: c.Misses, Revalidated: c.Revalidated, Stale: c.Stale,
		HitRatio: c.HitRatio(), BytesServed: map[string]float64{}, UpstreamFailures: map[string]float64{}}, EvictedBlobs: c.EvictedBlobs,
		Vulnerabilities: map[string]float64{}}
	ups := map[string]*Upstream{}
	up := func(name string) *Upstream {
		if ups[name] == nil {
			ups[name] = &Upstream{Name: name, Requests: map[string]float64{}}
		}
		return ups[name]
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s.read(mf.GetName(), m, up)
		}
	}
	for name, u := range ups {
		s.UpstreamFailures[name] = u.Errors + u.Requests["429"] + u.Requests["5xx"]
		s.Upstreams = append(s.Upstreams, *u)
	}
	return s
}

// read takes one series' value into the snapshot.
func (s *Snapshot) read(name string, m *dto.Metric, up func(string) *Upstream) {
	v := value(m)
	switch name {
	case "berth_bytes_served_total":
		s.BytesServed[label(m, "source")] += v
	case "berth_store_bytes":
		s.StoreBytes = v
	case "berth_store_blobs":
		s.StoreBlobs = v
	case "berth_fills_in_flight":
		s.FillsInFlight = v
	case "berth_cluster_members":
		s.ClusterMembers = v
	case "berth_config_last_reload_successful":
		s.ConfigReloadOK = v == 1
	case "berth_image_vulnerabilities":
		s.Vulnerabilities[label(m, "severity")] = v
	case "berth_image_scan_queue_depth":
		s.ScanQueue = v
	case "berth_upstream_requests_total":
		up(label(m, "upstream")).Requests[statusClass(label(m, "status"))] += v
	case "berth_upstream_errors_total":
		up(label(m, "upstream")).Errors += v
	case "berth_upstream_throttled_total":
		up(label(m, "upstream")).Throttled = v
	case "berth_upstream_backoff_seconds":
		up(label(m, "upstream")).BackoffSeconds = max(v, 0)
	case "berth_upstream_ratelimit_remaining":
		if v >= 0 {
			up(label(m, "upstream")).RateLimitRemaining = &v
		}
	case "berth_fill_duration_seconds":
		u := up(label(m, "upstream"))
		if label(m, "result") == "ok" {
			u.FillsOK += v
		} else {
			u.FillsFailed += v
		}
	}
}

// value is a counter's or gauge's value, or a histogram's count.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// statusClass is "2xx", "3xx", "4xx" or "5xx"; 429 keeps its own.
func statusClass(status string) string {
	n, err := strconv.Atoi(status)
	if err != nil || n < 100 || n > 599 {
		return "other"
	}
	if n == 429 {
		return "429"
	}
	return fmt.Sprintf("%dxx", n/100)
}

// failingWindow is how far back failures make an upstream "failing".
const failingWindow = time.Minute

// upstreamHealth orders the upstreams as the rules in force, adds each
// rule's address, and judges its health: backing off, failing (failures
// since the sample of a minute ago) or ok.
func upstreamHealth(got []Upstream, rules []upstream.Rule, hist []Sample) []Upstream {
	byName := map[string]Upstream{}
	for _, u := range got {
		byName[u.Name] = u
	}
	now := hist[len(hist)-1]
	past := hist[0]
	for _, h := range hist {
		if now.Time.Sub(h.Time) >= failingWindow {
			past = h
		}
	}
	out := make([]Upstream, 0, len(rules))
	for _, r := range rules {
		u, ok := byName[r.Name]
		if !ok {
			u = Upstream{Name: r.Name, Requests: map[string]float64{}}
		}
		u.Prefix, u.Registry, u.URL = r.Prefix, r.Registry, r.URL
		failed := now.UpstreamFailures[r.Name] - past.UpstreamFailures[r.Name]
		switch {
		case u.BackoffSeconds > 0:
			u.Health, u.Reason = "backing off", fmt.Sprintf("asked to wait; %.0f s left", u.BackoffSeconds)
		case failed > 0:
			u.Health, u.Reason = "failing", fmt.Sprintf("%.0f failed requests (no answer, 429 or 5xx) in the last minute", failed)
		default:
			u.Health = "ok"
		}
		out = append(out, u)
	}
	return out
}
