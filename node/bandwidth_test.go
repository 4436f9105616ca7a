package node

import "testing"

// A reload changes the bandwidth caps in place: the fills already running
// hold the same caps and follow the new rates.
func TestReloadBandwidth(t *testing.T) {
	e := newReloadEnv(t, "upstreamBandwidth: 1000000\nupstreams: [{name: a, prefix: a, registry: a.example, url: UP_A, upstreamBandwidth: 500000}]\n")
	node, rule := e.n.bw.node, e.n.bw.rule("a")
	if node.Rate() != 1000000 || rule.Rate() != 500000 {
		t.Fatalf("caps %d (node), %d (rule a)", node.Rate(), rule.Rate())
	}
	e.apply("upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A, upstreamBandwidth: 2000}]\n")
	if e.n.bw.node != node || e.n.bw.rule("a") != rule {
		t.Fatal("a reload replaced the caps instead of changing them")
	}
	if node.Rate() != 0 || rule.Rate() != 2000 {
		t.Fatalf("after reload: caps %d (node), %d (rule a)", node.Rate(), rule.Rate())
	}
	if got := metricValue(t, e, `berth_upstream_bandwidth_throttled_seconds_total{upstream="a"}`); got != "0" {
		t.Fatalf("throttled seconds = %s, want 0", got)
	}
}

// serveBandwidth and maxBlobStreams are read at each stream's start, so a
// reload applies to the next streams.
func TestReloadServeShaping(t *testing.T) {
	e := newReloadEnv(t, "upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]\n")
	if l := e.n.shaper.Limits(); l.BytesPerSecond != 0 || l.MaxStreams != 0 {
		t.Fatalf("limits %+v, want none", l)
	}
	e.apply("serveBandwidth: 1000000\nmaxBlobStreams: 4\nupstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]\n")
	if l := e.n.shaper.Limits(); l.BytesPerSecond != 1000000 || l.MaxStreams != 4 {
		t.Fatalf("limits after reload %+v", l)
	}
	if got := metricValue(t, e, "berth_serve_throttled_seconds_total"); got != "0" {
		t.Fatalf("serve throttled seconds = %s", got)
	}
}
