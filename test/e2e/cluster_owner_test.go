package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"berth/cluster"
	"berth/test/testreg"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestClusterTagRevalidatedOncePerTTL: with a 2 s TTL, once the tag is
// stale everywhere, pulls on all three nodes (at once, or one after the
// other) make the upstream see one HEAD of the tag, from its owner, and
// no GET while the digest is unchanged; after a retag, one HEAD and one
// GET, and every node serves the new digest.
func TestClusterTagRevalidatedOncePerTTL(t *testing.T) {
	const ttl = 2 * time.Second
	up := testreg.Start(t)
	img := testreg.Image(t, 81, 1000, 2000, 3000)
	want := up.Push(t, "team/ttl", "v1", img)
	nodes := cmStartCluster(t, up.URL, cmOpts{n: 3, rule: "    ttl: 2s\n"})
	cmPullEach(t, nodes, "team/ttl:v1", want)
	const head, get = "HEAD /v2/team/ttl/manifests/v1", "GET /v2/team/ttl/manifests/v1"

	check := func(what string, wantHead, wantGet int) {
		t.Helper()
		c := perPath(up)
		if c[head] != wantHead || c[get] != wantGet {
			t.Errorf("%s: upstream saw %d HEAD and %d GET of the tag, want %d and %d: %v", what, c[head], c[get], wantHead, wantGet, up.Requests())
		}
	}
	for _, mode := range []string{"concurrent", "sequential"} {
		time.Sleep(ttl + 500*time.Millisecond)
		up.Reset()
		start := time.Now()
		if mode == "concurrent" {
			cmPullConcurrently(t, nodes, "team/ttl:v1", want)
		} else {
			cmPullEach(t, nodes, "team/ttl:v1", want)
		}
		if el := time.Since(start); el > ttl {
			t.Fatalf("%s pulls took %v, longer than the TTL", mode, el)
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
	time.Sleep(ttl + 500*time.Millisecond)
	up.Reset()
	cmPullConcurrently(t, nodes, "team/ttl:v1", want2)
	check("pulls after a retag", 1, 1)
	for p, n := range perPath(up) {
		if strings.Contains(p, "/blobs/") && n != 1 {
			t.Errorf("%s: %d upstream requests, want 1", p, n)
		}
	}
	// And one after the other, within the TTL: nothing more upstream.
	up.Reset()
	cmPullEach(t, nodes, "team/ttl:v1", want2)
	if n := up.Count("total"); n != 0 {
		t.Errorf("pulls within the TTL reached the upstream %d times: %v", n, up.Requests())
	}
}

// TestClusterReplicaRefillsAnEmptyOwner: a first owner whose store was
// replaced (restarted with an empty data directory) gets the blob from the
// other owner's store, not from the upstream.
func TestClusterReplicaRefillsAnEmptyOwner(t *testing.T) {
	up := testreg.Start(t)
	img := testreg.Image(t, 81, 1<<20)
	want := up.Push(t, "team/replica", "v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	nodes := startCluster(t, 3, up.URL, "")
	names := []string{"node0", "node1", "node2"}
	first := cluster.Rank(names, ld.String(), 1)[0]
	var owner *clusterNode
	for i, n := range names {
		if n == first {
			owner = nodes[i]
		}
	}
	if d, err := pullAll(owner.Addr + "/team/replica:v1"); err != nil || d != want {
		t.Fatalf("cold pull on the first owner: %v %v", d, err)
	}
	// Its replica holds the layer too once a pull went through it.
	for _, nd := range nodes {
		if nd != owner {
			if _, err := pullAll(nd.Addr + "/team/replica:v1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first owner loses its disk.
	owner.Kill()
	if err := os.RemoveAll(owner.DataDir); err != nil {
		t.Fatal(err)
	}
	owner.start()
	waitMembers(t, nodes, 3)
	up.Reset()
	if d, err := pullAll(owner.Addr + "/team/replica:v1"); err != nil || d != want {
		t.Fatalf("pull on the emptied owner: %v %v", d, err)
	}
	for p, n := range perPath(up) {
		if strings.Contains(p, "/blobs/"+ld.String()) {
			t.Fatalf("the emptied owner fetched the layer from the upstream (%s: %d) although a replica holds it", p, n)
		}
	}
}
