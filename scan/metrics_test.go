package scan

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/config"
	"berth/scan/scantest"
	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// vulnerabilities has s recompute its totals, as its loop does when they
// are due, then reads berth_image_vulnerabilities from a registry as a
// scrape would: severity → value, the severities at 0 left out.
func vulnerabilities(t *testing.T, s *Scanner, reg prometheus.Gatherer) map[string]int {
	t.Helper()
	if err := s.m.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	return scrapeVulnerabilities(t, reg)
}

// scrapeVulnerabilities reads berth_image_vulnerabilities as it stands.
func scrapeVulnerabilities(t *testing.T, reg prometheus.Gatherer) map[string]int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "berth_image_vulnerabilities" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := int(m.GetGauge().GetValue()); v != 0 {
				out[m.GetLabel()[0].GetValue()] = v
			}
		}
	}
	return out
}

func sum(counts ...map[string]int) map[string]int {
	out := map[string]int{}
	for _, c := range counts {
		for k, v := range c {
			out[k] += v
		}
	}
	return out
}

func (e *env) deleteImage(t *testing.T, repo, digest string) {
	t.Helper()
	b := e.st.NewBatch()
	defer b.Close()
	must(t, b.DeleteImage(store.LocalKey(repo), digest))
	must(t, b.Commit())
}

// berth_image_vulnerabilities counts the latest scans of the images the
// store holds: an image deleted from every repository that held it drops
// out, also after a restart; one held by two repositories counts once.
func TestVulnerabilitiesMetricCountsStoredImagesOnly(t *testing.T) {
	e := newEnv(t, nil)
	e.importDB(t, scantest.Records)
	vuln := scantest.Vulnerable(t, goBinary(t))
	dv := e.put(t, "app/a", vuln)
	if e.put(t, "app/c", vuln) != dv {
		t.Fatal("the same image pushed twice has two digests")
	}
	da := e.put(t, "app/b", scantest.Alpine(t))
	rv, ra := e.scan(t, "app/a", dv), e.scan(t, "app/b", da)
	if len(rv.Findings) == 0 || len(ra.Findings) == 0 {
		t.Fatalf("findings %q and %q: the test needs both images vulnerable", found(rv), found(ra))
	}
	both := sum(rv.Counts(), ra.Counts())
	if got := vulnerabilities(t, e.s, e.reg); !maps.Equal(got, both) {
		t.Fatalf("two images scanned, the vulnerable one in two repositories: %v, want %v", got, both)
	}

	e.deleteImage(t, "app/a", dv)
	if got := vulnerabilities(t, e.s, e.reg); !maps.Equal(got, both) {
		t.Fatalf("image deleted from one of its two repositories: %v, want %v (app/c still holds it)", got, both)
	}
	e.deleteImage(t, "app/c", dv)
	if got := vulnerabilities(t, e.s, e.reg); !maps.Equal(got, ra.Counts()) {
		t.Fatalf("image deleted from every repository: %v, want only the stored image's %v", got, ra.Counts())
	}

	// A restart reads every record, the deleted image's too.
	e.s.Close()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Store: e.st, DB: e.db, Settings: func() config.Scanning { return e.set }, TempDir: e.tmp, Registerer: reg})
	must(t, err)
	must(t, s.Start(e.ctx))
	t.Cleanup(s.Close)
	if got := vulnerabilities(t, s, reg); !maps.Equal(got, ra.Counts()) {
		t.Fatalf("after a restart: %v, want %v", got, ra.Counts())
	}
}

// A scrape never walks the store: berth_image_vulnerabilities serves what
// the last pass found, however many scrapes come at once, and a recorded
// scan makes the next pass due.
func TestVulnerabilitiesMetricNeverWalksOnScrape(t *testing.T) {
	e := newEnv(t, nil)
	d := e.put(t, "app/a", scantest.Alpine(t))
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, e.st, time.Now, zaptest.NewLogger(t))
	var walks atomic.Int64
	walk := m.walk
	m.walk = func(ctx context.Context, fn func(string) error) error {
		walks.Add(1)
		return walk(ctx, fn)
	}
	m.recorded(&Record{Digest: d, Status: StatusComplete, Findings: []Finding{{Severity: "HIGH"}, {Severity: "HIGH"}, {Severity: "LOW"}}})
	if !m.changed() {
		t.Fatal("a recorded scan did not make a pass due")
	}
	gather := func() {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	gather()
	if n := walks.Load(); n != 0 {
		t.Fatalf("50 scrapes before the first pass walked the store %d times", n)
	}
	if err := m.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m.changed() {
		t.Fatal("a pass left itself due")
	}
	gather()
	if n := walks.Load(); n != 1 {
		t.Fatalf("one pass and 50 scrapes walked the store %d times, want 1", n)
	}
	want := map[string]int{"HIGH": 2, "LOW": 1}
	if got := scrapeVulnerabilities(t, reg); !maps.Equal(got, want) {
		t.Fatalf("after the pass: %v, want %v", got, want)
	}
}
