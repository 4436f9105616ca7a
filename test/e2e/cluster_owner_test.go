package e2e

import (
	"os"
	"strings"
	"testing"

	"berth/cluster"
	"berth/test/testreg"
)

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
	if d, err := testreg.PullAll(owner.Addr + "/team/replica:v1"); err != nil || d != want {
		t.Fatalf("cold pull on the first owner: %v %v", d, err)
	}
	// Its replica holds the layer too once a pull went through it.
	for _, nd := range nodes {
		if nd != owner {
			if _, err := testreg.PullAll(nd.Addr + "/team/replica:v1"); err != nil {
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
	if d, err := testreg.PullAll(owner.Addr + "/team/replica:v1"); err != nil || d != want {
		t.Fatalf("pull on the emptied owner: %v %v", d, err)
	}
	for p, n := range up.PerPath() {
		if strings.Contains(p, "/blobs/"+ld.String()) {
			t.Fatalf("the emptied owner fetched the layer from the upstream (%s: %d) although a replica holds it", p, n)
		}
	}
}
