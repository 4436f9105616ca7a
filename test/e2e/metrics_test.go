package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// metric returns the value of one sample line of a Prometheus scrape.
func metric(t *testing.T, scrape, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(scrape)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func scrape(t *testing.T, b *Berth) string {
	t.Helper()
	resp, err := http.Get(b.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// TestMetricsAndHealth pulls a known sequence and checks the counters, and
// the health and readiness endpoints of the admin listener.
func TestMetricsAndHealth(t *testing.T) {
	up := testreg.Start(t)
	up.Push(t, "team/app", "v1", testreg.Image(t, 21, 1000, 2000, 3000))
	raw, err := crane.Manifest(up.Host() + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, ""))
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(b.AdminURL + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
	for range 2 {
		img, err := crane.Pull(b.Addr + "/up/team/app:v1")
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, _ := l.Compressed()
			io.Copy(io.Discard, rc)
			rc.Close()
		}
		// The second pull is all hits once the first one's fills
		// committed (their clients had the last byte before).
		for _, l := range layers {
			d, _ := l.Digest()
			b.WaitLog("the fill of "+d.String(), time.Minute, func(log string) bool { return loggedFilled(log, d.String()) })
		}
	}
	resp, _ := b.Do(context.Background(), http.MethodGet, "/v2/up/team/app/manifests/nope", nil)
	resp.Body.Close()

	// A request is counted just after its last byte reaches the client:
	// scrape until the counts settle (bounded).
	s := scrape(t, b)
	for deadline := time.Now().Add(10 * time.Second); metric(t, s, `berth_http_requests_total{method="GET",route="blob",status="200"}`) < 6; {
		if time.Now().After(deadline) {
			t.Fatalf("the blob GETs are not all counted 10s after they ended:\n%s", s)
		}
		time.Sleep(50 * time.Millisecond)
		s = scrape(t, b)
	}
	checks := []struct {
		series string
		want   float64
	}{
		{`berth_cache_requests_total{kind="blob",result="miss"}`, 3},
		{`berth_cache_requests_total{kind="blob",result="hit"}`, 3},
		{`berth_cache_requests_total{kind="tag",result="miss"}`, 1},
		{`berth_cache_requests_total{kind="tag",result="hit"}`, 1},
		{`berth_upstream_requests_total{method="GET",status="200",upstream="up"}`, 5}, // ping, manifest, 3 blobs
		{`berth_upstream_requests_total{method="GET",status="404",upstream="up"}`, 1},
		{`berth_http_requests_total{method="GET",route="blob",status="200"}`, 6},
		{`berth_http_requests_total{method="GET",route="manifest",status="404"}`, 1},
		{`berth_bytes_served_total{source="upstream"}`, 6000 + float64(len(raw))},
		{`berth_bytes_served_total{source="store"}`, 6000 + float64(len(raw))},
		{`berth_store_blobs`, 3},
		{`berth_store_bytes`, 6000},
		{`berth_fills_in_flight`, 0},
	}
	for _, c := range checks {
		if got := metric(t, s, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
	if metric(t, s, `berth_fill_duration_seconds_count{result="ok",upstream="up"}`) != 3 {
		t.Errorf("fill duration histogram count is not 3")
	}
}
