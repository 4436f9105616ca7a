package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the reference server child, like
// the bench command does.
func TestMain(m *testing.M) {
	if childMain() {
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs every scenario of the harness with tiny sizes, so that the
// harness cannot rot. It checks that each scenario ran and produced its
// rows, not the numbers: they are meaningless at these sizes and on a
// machine busy with other tests. The scenarios get a 2 min budget; the
// berth build before them (fast with a warm build cache) is not counted.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cfg := smokeConfig()
	cfg.Command = "go test ./test/bench"
	var log strings.Builder
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out strings.Builder
	rep.text(&out)
	t.Logf("smoke run took %s\n%s\n%s", time.Since(start).Round(time.Millisecond), log.String(), out.String())
	if len(rep.Sections) < 9 {
		t.Fatalf("%d sections, want 9", len(rep.Sections))
	}
	for _, s := range rep.Sections {
		if s.Err != "" {
			t.Errorf("scenario %d (%s): %s", s.ID, s.Title, s.Err)
		}
		if len(s.Rows) == 0 && s.Extra == "" {
			t.Errorf("scenario %d (%s) produced nothing", s.ID, s.Title)
		}
		for _, r := range s.Rows {
			if r.Berth.Empty() {
				t.Errorf("scenario %d: %s %s has no measurement", s.ID, r.Case, r.Measure)
			}
		}
	}
	// Whatever the machine, one fill per blob is not a performance target
	// but a property.
	for _, r := range rep.Sections[3].Rows {
		if r.Measure == "upstream GETs of the blob" && r.Result != "PASS" {
			t.Errorf("scenario 4, %s: upstream GETs %s, want 1", r.Case, r.Berth.String())
		}
	}
	// The same across a cluster: one upstream GET per blob, and the nodes
	// that do not fill a blob get it from a peer.
	for _, r := range rep.Sections[7].Rows {
		switch {
		case strings.HasPrefix(r.Measure, "upstream GETs per blob") && r.Result != "PASS":
			t.Errorf("scenario 8: upstream GETs per blob %s, want 1", r.Berth.String())
		case strings.HasPrefix(r.Measure, "bytes between peers") && (r.Berth.Empty() || r.Berth.Min() <= 0):
			t.Errorf("scenario 8: bytes between peers %s, want more than 0", r.Berth.String())
		}
	}
	// Distribution as a peer: every row has its figure beside Berth's.
	peer := false
	for _, s := range rep.Sections {
		if s.ID != 10 {
			continue
		}
		peer = len(s.Rows) > 0
		for _, r := range s.Rows {
			if r.Ref.Empty() {
				t.Errorf("scenario 10: %s %s has no Distribution figure", r.Case, r.Measure)
			}
		}
	}
	if !peer {
		t.Error("no Distribution rows (scenario 10)")
	}
	var md strings.Builder
	rep.markdown(&md)
	if strings.Contains(md.String(), "not measured yet") {
		t.Error("the report still has a placeholder")
	}
	if !strings.Contains(md.String(), "| 8 | ") {
		t.Error("the summary table lacks the cluster scenario")
	}
}
