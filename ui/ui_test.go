package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/metrics"
	"berth/proxy"
	"berth/registry"
	"berth/ui"
	"berth/upstream"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStatusReadsTheMetrics: the status the page draws is the numbers
// /metrics exposes, read from the same registry, and its history ends with
// them.
func TestStatusReadsTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.CacheResult("blob", "hit")
	m.CacheResult("blob", "hit")
	m.CacheResult("manifest", "revalidated")
	m.CacheResult("blob", "miss")
	m.ObserveRequest(registry.RequestInfo{Method: "GET", Status: 200, Bytes: 1000, Source: registry.SourceStore})
	m.ObserveRequest(registry.RequestInfo{Method: "GET", Status: 200, Bytes: 300, Source: registry.SourceUpstream})
	m.UpstreamFuncs("hub", func() float64 { return 2 }, func() float64 { return 0 }, func() float64 { return 77 })
	m.UpstreamFuncs("quay", func() float64 { return 0 }, func() float64 { return 30 }, func() float64 { return -1 })
	m.UpstreamReqs.WithLabelValues("hub", "GET", "200").Add(5)
	m.UpstreamReqs.WithLabelValues("hub", "GET", "503").Add(1)
	m.Gauge("berth_store_bytes", "", func() float64 { return 4096 })
	m.Gauge("berth_image_scan_queue_depth", "", func() float64 { return 3 })
	vulns := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_image_vulnerabilities"}, []string{"severity"})
	vulns.WithLabelValues("CRITICAL").Set(2)
	reg.MustRegister(vulns)

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	audit := filepath.Join(t.TempDir(), "audit.log")
	lines := `{"action":"BatchGetImage","principal":"anonymous"}` + "\n" + `not json` + "\n" + `{"action":"StartGc","principal":"admin"}` + "\n"
	if err := os.WriteFile(audit, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	p := ui.New(ui.Options{Gatherer: reg, Now: func() time.Time { return now }, AuditFile: audit,
		Fills: func() []proxy.FillStatus {
			return []proxy.FillStatus{{Digest: "sha256:ab", Upstream: "hub", Repository: "library/alpine", Size: 100, Written: 40}}
		},
		Rules: func() []upstream.Rule {
			return []upstream.Rule{{Name: "hub", Prefix: "hub", Registry: "docker.io"}, {Name: "quay", Registry: "quay.io"}}
		}})
	p.Sample()
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()

	var st ui.Status
	getJSON(t, srv.URL+ui.Prefix+"api/status", &st)
	if st.Hits != 2 || st.Revalidated != 1 || st.Misses != 1 || st.HitRatio != 0.75 {
		t.Errorf("cache counters %+v, want 2 hits, 1 revalidated, 1 miss, ratio 0.75", st.Sample)
	}
	if want := testutil.ToFloat64(m.BytesServed.WithLabelValues("store")); st.BytesServed["store"] != want || st.BytesServed["upstream"] != 300 {
		t.Errorf("bytes served %v, want store %v (as /metrics) and upstream 300", st.BytesServed, want)
	}
	if st.StoreBytes != 4096 {
		t.Errorf("store bytes %v", st.StoreBytes)
	}
	if st.Vulnerabilities["CRITICAL"] != 2 || st.ScanQueue != 3 {
		t.Errorf("vulnerabilities %v, scan queue %v", st.Vulnerabilities, st.ScanQueue)
	}
	if len(st.History) != 2 || !st.History[1].Time.Equal(now) {
		t.Errorf("history %+v, want the sample and now", st.History)
	}
	if len(st.Upstreams) != 2 {
		t.Fatalf("upstreams %+v", st.Upstreams)
	}
	hub, quay := st.Upstreams[0], st.Upstreams[1]
	if hub.Name != "hub" || hub.Requests["2xx"] != 5 || hub.Requests["5xx"] != 1 || hub.Throttled != 2 ||
		hub.RateLimitRemaining == nil || *hub.RateLimitRemaining != 77 || hub.Registry != "docker.io" {
		t.Errorf("hub %+v", hub)
	}
	if quay.Health != "backing off" || quay.RateLimitRemaining != nil {
		t.Errorf("quay %+v, want backing off without RateLimit-Remaining", quay)
	}
	if len(st.Fills) != 1 || st.Fills[0].Written != 40 {
		t.Errorf("fills %+v", st.Fills)
	}
	if len(st.Audit) != 2 || !strings.Contains(string(st.Audit[1]), "StartGc") {
		t.Errorf("audit tail %s, want the two JSON lines, oldest first", st.Audit)
	}
}

// TestUpstreamFailing: failures since the sample of a minute ago make an
// upstream "failing"; older ones do not.
func TestUpstreamFailing(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	p := ui.New(ui.Options{Gatherer: reg, Now: func() time.Time { return now },
		Rules: func() []upstream.Rule { return []upstream.Rule{{Name: "hub"}} }})
	m.UpstreamErrors.WithLabelValues("hub").Add(3)
	p.Sample()
	now = now.Add(2 * time.Minute)
	p.Sample()
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	var st ui.Status
	getJSON(t, srv.URL+ui.Prefix+"api/status", &st)
	if st.Upstreams[0].Health != "ok" {
		t.Errorf("health %q with failures only older than a minute", st.Upstreams[0].Health)
	}
	m.UpstreamErrors.WithLabelValues("hub").Inc()
	getJSON(t, srv.URL+ui.Prefix+"api/status", &st)
	if st.Upstreams[0].Health != "failing" {
		t.Errorf("health %q after a new failure, want failing", st.Upstreams[0].Health)
	}
}

// TestPageFiles: the page and its assets are served from the binary with
// a policy that loads nothing from elsewhere.
func TestPageFiles(t *testing.T) {
	p := ui.New(ui.Options{Gatherer: prometheus.NewRegistry()})
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	for path, want := range map[string]string{"": "<title>Berth status</title>", "app.js": "admin/v1", "style.css": "--fg"} {
		resp, err := http.Get(srv.URL + ui.Prefix + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
			t.Errorf("GET %s: %d, want %q in the body", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		// The SVG namespace is a name, not an address.
		body := strings.ReplaceAll(b.String(), "http://www.w3.org/2000/svg", "")
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s names another origin", path)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
