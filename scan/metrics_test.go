package scan

import (
	"maps"
	"testing"

	"berth/config"
	"berth/scan/scantest"
	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
)

// vulnerabilities reads berth_image_vulnerabilities from a registry as a
// scrape would: severity → value, the severities at 0 left out.
func vulnerabilities(t *testing.T, reg prometheus.Gatherer) map[string]int {
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
	if got := vulnerabilities(t, e.reg); !maps.Equal(got, both) {
		t.Fatalf("two images scanned, the vulnerable one in two repositories: %v, want %v", got, both)
	}

	e.deleteImage(t, "app/a", dv)
	if got := vulnerabilities(t, e.reg); !maps.Equal(got, both) {
		t.Fatalf("image deleted from one of its two repositories: %v, want %v (app/c still holds it)", got, both)
	}
	e.deleteImage(t, "app/c", dv)
	if got := vulnerabilities(t, e.reg); !maps.Equal(got, ra.Counts()) {
		t.Fatalf("image deleted from every repository: %v, want only the stored image's %v", got, ra.Counts())
	}

	// A restart reads every record, the deleted image's too.
	e.s.Close()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Store: e.st, DB: e.db, Settings: func() config.Scanning { return e.set }, TempDir: e.tmp, Registerer: reg})
	must(t, err)
	must(t, s.Start(e.ctx))
	t.Cleanup(s.Close)
	if got := vulnerabilities(t, reg); !maps.Equal(got, ra.Counts()) {
		t.Fatalf("after a restart: %v, want %v", got, ra.Counts())
	}
}
