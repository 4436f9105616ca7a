package metrics

import (
	"net/http"
	"testing"
	"time"

	"berth/registry"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Requests land in the series of their labels, found once and reused:
// counts, durations and bytes add up per label set, and no label set makes
// more than its one series.
func TestObserveRequestCountsPerLabelSet(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	get := registry.RequestInfo{Method: http.MethodGet, Kind: registry.KindManifest, Status: http.StatusOK,
		Bytes: 100, Source: registry.SourceStore, Duration: time.Millisecond}
	for range 3 {
		m.ObserveRequest(get)
	}
	notFound := get
	notFound.Status, notFound.Bytes = http.StatusNotFound, 0
	m.ObserveRequest(notFound)
	head := get
	head.Method, head.Bytes = http.MethodHead, 0
	m.ObserveRequest(head)
	blob := registry.RequestInfo{Method: http.MethodGet, Kind: registry.KindBlob, Status: http.StatusOK,
		Bytes: 7, Source: registry.SourceUpstream}
	m.ObserveRequest(blob)
	m.CacheResult("tag", "hit")
	m.CacheResult("tag", "hit")
	m.CacheResult("blob", "miss")

	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.Requests.WithLabelValues("manifest", "GET", "200"), 3},
		{m.Requests.WithLabelValues("manifest", "GET", "404"), 1},
		{m.Requests.WithLabelValues("manifest", "HEAD", "200"), 1},
		{m.Requests.WithLabelValues("blob", "GET", "200"), 1},
		{m.BytesServed.WithLabelValues("store"), 300},
		{m.BytesServed.WithLabelValues("upstream"), 7},
		{m.Cache.WithLabelValues("tag", "hit"), 2},
		{m.Cache.WithLabelValues("blob", "miss"), 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%v = %v, want %v", c.c.(prometheus.Metric).Desc(), got, c.want)
		}
	}
	for name, want := range map[string]int{
		"berth_http_requests_total": 4, "berth_http_request_duration_seconds": 3,
		"berth_bytes_served_total": 2, "berth_cache_requests_total": 2,
	} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != want {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, want)
		}
	}
	if got := histogramCount(t, reg, "manifest", "GET"); got != 4 {
		t.Errorf("manifest GET durations observed %d times, want 4", got)
	}
}

func histogramCount(t *testing.T, reg prometheus.Gatherer, route, method string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "berth_http_request_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["method"] == method {
				return mt.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}
