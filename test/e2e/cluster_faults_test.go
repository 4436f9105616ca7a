package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/cluster"
	"berth/test/testreg"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestClusterNodeLoss: a node killed with SIGKILL while clients pull a
// cached image from the others fails no pull; a first owner killed while
// it streams a cold blob to two other nodes fails neither pull (they resume
// from the next owner or the upstream); killed nodes restart, rejoin and
// keep their store.
func TestClusterNodeLoss(t *testing.T) {
	up := testreg.Start(t)
	wantWarm := up.Push(t, "team/warm", "v1", twentyLayers(t, 51))
	nodes := startCluster(t, 3, up.URL, "")
	cmPullEach(t, nodes, "team/warm:v1", wantWarm)

	// 1. Kill C while 9 clients pull the warm image from A and B.
	up.Reset()
	var wg sync.WaitGroup
	errs := make(chan error, 27)
	var pulls atomic.Int64
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				nd := nodes[i%2]
				d, err := testreg.PullAll(nd.Addr + "/team/warm:v1")
				if err == nil && d != wantWarm {
					err = fmt.Errorf("digest %s, want %s", d, wantWarm)
				}
				if err != nil {
					errs <- fmt.Errorf("pull from %s: %w", nd.Addr, err)
				}
				pulls.Add(1)
			}
		}()
	}
	for end := time.Now().Add(10 * time.Second); pulls.Load() < 3 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	nodes[2].Kill()
	t.Logf("killed C after %d of 27 pulls", pulls.Load())
	cmWaitGroup(t, &wg, 60*time.Second)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("warm pulls from A and B reached the upstream %d times: %v", n, up.Requests())
	}
	d := cmWaitAlive(t, nodes[:2], 2, 20*time.Second)
	t.Logf("A and B saw C dead %v after the pulls", d.Round(100*time.Millisecond))
	cmPullConcurrently(t, nodes[:2], "team/warm:v1", wantWarm)

	// C restarts with its data dir, rejoins and serves the warm image from
	// its own store.
	nodes[2].start()
	t.Logf("C rejoined in %v", cmWaitAlive(t, nodes, 3, 20*time.Second).Round(100*time.Millisecond))
	up.Reset()
	cmPullEach(t, nodes[2:], "team/warm:v1", wantWarm)
	if n := up.Count("total"); n != 0 {
		t.Fatalf("warm pull from restarted C reached the upstream %d times: %v", n, up.Requests())
	}

	// 2. A cold 40 MiB layer, streamed slowly by the upstream: S and N (not
	// its first owner F) pull it, both through F; F dies mid-stream.
	const size = 40 << 20
	big := testreg.Image(t, 52, size)
	wantBig := up.Push(t, "team/big", "v1", big)
	layers, err := big.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*clusterNode{"node0": nodes[0], "node1": nodes[1], "node2": nodes[2]}
	rank := cluster.Rank([]string{"node0", "node1", "node2"}, ld.String(), 3)
	f := byName[rank[0]]
	t.Logf("layer %s: owners %v (first owner %s is killed)", ld, rank[:2], rank[0])
	cmSlowBlobs(up, 100*time.Millisecond) // 10 MiB/s: about 4 s
	defer up.Mutate(nil)
	up.Reset()
	type result struct {
		node string
		d    v1.Hash
		err  error
	}
	res := make(chan result, 2)
	counts := map[string]*atomic.Int64{}
	for _, name := range rank[1:] {
		counts[name] = &atomic.Int64{}
		go func() {
			d, err := testreg.PullInto(byName[name].Addr+"/team/big:v1", cmCounter{counts[name]})
			res <- result{name, d, err}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for counts[rank[1]].Load() < 4<<20 || counts[rank[2]].Load() < 4<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("clients got %d and %d bytes in 20s", counts[rank[1]].Load(), counts[rank[2]].Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Kill()
	t.Logf("killed %s when the clients of %s and %s had %d and %d of %d bytes", rank[0], rank[1], rank[2],
		counts[rank[1]].Load(), counts[rank[2]].Load(), size)
	for range 2 {
		select {
		case r := <-res:
			if r.err != nil || r.d != wantBig {
				t.Errorf("pull of the cold image from %s while its first owner died: %v %v, want %s", r.node, r.d, r.err, wantBig)
			}
		case <-time.After(45 * time.Second):
			t.Fatal("pulls of the cold image did not finish within 45s")
		}
	}
	t.Logf("upstream requests for the cold image: %v", up.PerPath())
	// F's fetch, cut when it died, and the second owner's resume; the
	// other node resumed from the second owner.
	if n := up.PerPath()["GET /v2/team/big/blobs/"+ld.String()]; n < 1 || n > 2 {
		t.Errorf("upstream saw %d GETs of the cold layer, want 1 or 2", n)
	}
	if t.Failed() {
		t.FailNow()
	}
	up.Mutate(nil)

	// F restarts, rejoins and still serves the warm image from its store.
	f.start()
	t.Logf("%s rejoined in %v", rank[0], cmWaitAlive(t, nodes, 3, 20*time.Second).Round(100*time.Millisecond))
	up.Reset()
	cmPullEach(t, []*clusterNode{f}, "team/warm:v1", wantWarm)
	if n := up.Count("total"); n != 0 {
		t.Fatalf("warm pull from restarted %s reached the upstream %d times: %v", rank[0], n, up.Requests())
	}
	cmPullEach(t, nodes, "team/big:v1", wantBig)
}

// cmPartitionGid is the primary group node C runs with in
// TestClusterPartition (any group unused by other processes).
const cmPartitionGid = 47211

// TestClusterPartition: C is cut off from A and B (gossip and peer API).
// Both sides notice, keep serving what they cached, and C fills a cold
// image from the upstream on its own; after healing the members converge
// and every node serves both images.
func TestClusterPartition(t *testing.T) {
	up := testreg.Start(t)
	wantWarm := up.Push(t, "team/warm", "v1", twentyLayers(t, 61))
	wantCold := up.Push(t, "team/cold", "v1", twentyLayers(t, 62))
	nodes := cmStartCluster(t, up.URL, cmOpts{n: 3, gid: map[int]uint32{2: cmPartitionGid}})
	cmPullEach(t, nodes, "team/warm:v1", wantWarm)

	heal := cmPartition(t, nodes[2], nodes[:2], cmPartitionGid)
	start := time.Now()
	cmWaitAlive(t, nodes[:2], 2, 20*time.Second)
	cmWaitAlive(t, nodes[2:], 1, 20*time.Second)
	t.Logf("partition seen by both sides after %v", time.Since(start).Round(100*time.Millisecond))

	up.Reset()
	cmPullConcurrently(t, nodes, "team/warm:v1", wantWarm)
	if n := up.Count("total"); n != 0 {
		t.Errorf("cached pulls during the partition reached the upstream %d times: %v", n, up.Requests())
	}
	up.Reset()
	t0 := time.Now()
	cmPullEach(t, nodes[2:], "team/cold:v1", wantCold)
	t.Logf("C filled the cold image alone in %v", time.Since(t0).Round(10*time.Millisecond))
	blobGets := 0
	for p, n := range up.PerPath() {
		if strings.HasPrefix(p, "GET ") && strings.Contains(p, "/blobs/") {
			blobGets++
			if n != 1 {
				t.Errorf("%s: %d upstream requests, want 1", p, n)
			}
		}
	}
	if blobGets != 20 { // the layers (crane reads no config here)
		t.Errorf("C made %d distinct blob GETs upstream, want 20: %v", blobGets, up.PerPath())
	}
	if t.Failed() {
		t.FailNow()
	}

	heal()
	d := cmWaitAlive(t, nodes, 3, 40*time.Second)
	t.Logf("members converged %v after healing", d.Round(100*time.Millisecond))
	cmPullConcurrently(t, nodes, "team/warm:v1", wantWarm)
	cmPullConcurrently(t, nodes, "team/cold:v1", wantCold)
}
