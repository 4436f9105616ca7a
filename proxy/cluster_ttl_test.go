package proxy

import (
	"strings"
	"testing"
	"time"

	"berth/test/testreg"
	"berth/upstream"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestClusterTagRevalidatedOncePerTTL: once the tag is stale everywhere
// (the clock the three nodes share moved past the TTL), pulls on all
// three nodes, at once or one after the other, make the upstream see one
// HEAD of the tag, sent by the tag's first owner, and no GET while the
// digest is unchanged; after a retag, one HEAD and one GET, one request
// for each new blob, and every node serves the new digest; within the
// TTL, nothing reaches the upstream.
func TestClusterTagRevalidatedOncePerTTL(t *testing.T) {
	const ttl = 2 * time.Second
	up := testreg.Start(t)
	img := testreg.Image(t, 81, 1000, 2000, 3000)
	want := up.Push(t, "team/ttl", "v1", img)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	nodes := newCluster(t, 3, upstream.Rule{Name: "up", Prefix: "up", Registry: "up.example", URL: up.URL, Default: true, TTL: ttl}, clock)
	const ref = "up/team/ttl:v1"
	pullEach(t, nodes, ref, want)
	const head, get = "HEAD /v2/team/ttl/manifests/v1", "GET /v2/team/ttl/manifests/v1"
	u := nodes[0].proxy.Router().Upstreams()[0]
	owner := nodes[0].cluster.Owners(tagKey(upstream.Target{Upstream: u, Repo: "team/ttl"}, "v1"))[0].Name

	reset := func() {
		up.Reset()
		for _, nd := range nodes {
			nd.sent.take()
		}
	}
	check := func(what string, wantHead, wantGet int) {
		t.Helper()
		c := up.PerPath()
		if c[head] != wantHead || c[get] != wantGet {
			t.Errorf("%s: upstream saw %d HEAD and %d GET of the tag, want %d and %d: %v", what, c[head], c[get], wantHead, wantGet, up.Requests())
		}
		for _, nd := range nodes {
			sent := strings.Join(nd.sent.take(), "\n") + "\n"
			heads, gets := strings.Count(sent, head+"\n"), strings.Count(sent, get+"\n")
			if nd.name != owner && heads+gets > 0 {
				t.Errorf("%s: %s, not the tag's first owner %s, asked the upstream for the tag (%d HEAD, %d GET)", what, nd.name, owner, heads, gets)
			}
		}
	}
	for _, mode := range []string{"concurrent", "sequential"} {
		clock.Add(ttl + 500*time.Millisecond)
		reset()
		if mode == "concurrent" {
			pullConcurrently(t, nodes, ref, want)
		} else {
			pullEach(t, nodes, ref, want)
		}
		check(mode+" pulls after the TTL", 1, 0)
		if n := up.Count("total"); n != 1 {
			t.Errorf("%s: upstream saw %d requests, want 1: %v", mode, n, up.Requests())
		}
	}

	// Retag upstream: same layers, new config.
	img2, err := mutate.Config(img, v1.Config{Env: []string{"RETAGGED=1"}})
	if err != nil {
		t.Fatal(err)
	}
	want2 := up.Push(t, "team/ttl", "v1", img2)
	if want2 == want {
		t.Fatal("retagged image has the old digest")
	}
	clock.Add(ttl + 500*time.Millisecond)
	reset()
	pullConcurrently(t, nodes, ref, want2)
	check("pulls after a retag", 1, 1)
	for p, n := range up.PerPath() {
		if strings.Contains(p, "/blobs/") && n != 1 {
			t.Errorf("%s: %d upstream requests, want 1", p, n)
		}
	}
	// And one after the other, within the TTL: nothing more upstream.
	clock.Add(ttl / 2)
	reset()
	pullEach(t, nodes, ref, want2)
	if n := up.Count("total"); n != 0 {
		t.Errorf("pulls within the TTL reached the upstream %d times: %v", n, up.Requests())
	}
}
