package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMeasuredGrowth(t *testing.T) {
	s := &Section{ID: 8}
	for _, r := range []struct {
		cs    string
		b, rf float64
	}{{"3 nodes, 100 clients", 100, 50}, {"5 nodes, 100 clients", 150, 50}, {"9 nodes, 100 clients", 300, 60}} {
		s.add(&Row{Case: r.cs, Measure: "wall time", Berth: sample("ms", 0, r.b), Ref: sample("ms", 0, r.rf)})
		s.add(&Row{Case: r.cs, Measure: "peer bytes", Berth: sample("MiB", 1)}) // not measured: left out
	}
	s.add(&Row{Case: "3 nodes, 100 clients", Measure: "only once", Berth: sample("", 0, 1)})
	for _, r := range s.Rows {
		r.eval()
	}
	got := s.measuredGrowth()
	want := "wall time: 3 nodes: 100 ms (2.00×) → 5 nodes: 150 ms (3.00×) → 9 nodes: 300 ms (5.00×)"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("measuredGrowth = %q, want [%q]", got, want)
	}
	var md strings.Builder
	s.boundsMarkdown(func(f string, a ...any) { fmt.Fprintf(&md, f, a...) })
	for _, w := range []string{"**What bounds it:**", "**From small to large:**", want} {
		if !strings.Contains(md.String(), w) {
			t.Errorf("markdown lacks %q:\n%s", w, md.String())
		}
	}
	// A section's own text wins over the default.
	s.Bound = "the link"
	if b, _ := s.bounds(); b != "the link" {
		t.Errorf("bounds() = %q, want the section's own", b)
	}
}

func TestPctMs(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := pctMs(ds, 0.99); p != 99 {
		t.Errorf("p99 of 1..100 ms = %v, want 99", p)
	}
	if p := pctMs(ds[:10], 0.99); p != 10 {
		t.Errorf("p99 of 1..10 ms = %v, want 10 (the slowest)", p)
	}
	if p := pctMs(ds[:3], 0.5); p != 2 {
		t.Errorf("median of 1..3 ms = %v, want 2", p)
	}
}

func TestPeerBound(t *testing.T) {
	for n, want := range map[int]float64{3: 3, 4: 3, 5: 4, 9: 8} {
		if got := peerBound(n); got != want {
			t.Errorf("peerBound(%d) = %v, want %v", n, got, want)
		}
	}
}
