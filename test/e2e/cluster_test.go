package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/test/testport"
	"berth/test/testreg"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// clusterNode is one berth process of a test cluster.
type clusterNode struct {
	*Berth
	gossip, peer string
}

// startCluster starts n berth processes on 127.0.0.(i+1), joined into one
// cluster in front of one upstream.
func startCluster(t *testing.T, n int, upURL, extra string) []*clusterNode {
	t.Helper()
	return startClusterWith(t, n, upURL, extra, nil)
}

// startClusterWith is startCluster with clusterExtra(i) appended to node
// i's cluster section.
func startClusterWith(t *testing.T, n int, upURL, extra string, clusterExtra func(i int) string) []*clusterNode {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "cluster.key")
	writeFile(t, secret, strings.Repeat("ab", 32)+"\n")
	var gossips []string
	nodes := make([]*clusterNode, n)
	for i := range n {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		nodes[i] = &clusterNode{gossip: fmt.Sprintf("%s:%d", host, testport.Free(t)), peer: fmt.Sprintf("%s:%d", host, testport.Free(t))}
		gossips = append(gossips, nodes[i].gossip)
	}
	for i, nd := range nodes {
		cfg := fmt.Sprintf("cluster:\n  nodeName: node%d\n  gossipAddr: %q\n  peerAddr: %q\n  secretFile: %q\n  replicas: 2\n  join: [%s]\n",
			i, nd.gossip, nd.peer, secret, `"`+strings.Join(gossips, `","`)+`"`)
		if clusterExtra != nil {
			cfg += clusterExtra(i)
		}
		cfg += "rateLimit:\n  disabled: true\n" + extra + "upstreams:\n" + upstreamConfig("hub", "hub", "docker.io", upURL, true, "")
		nd.Berth = StartBerth(t, "", cfg)
	}
	waitMembers(t, nodes, n)
	return nodes
}

// waitMembers waits until every node sees want alive members.
func waitMembers(t *testing.T, nodes []*clusterNode, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range nodes {
		for {
			if aliveMembers(nd) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d alive members, want %d", nd.Addr, aliveMembers(nd), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func aliveMembers(nd *clusterNode) int {
	resp, err := http.Get(nd.AdminURL + "/cluster/members")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct {
		Members []struct{ Name, State string }
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return -1
	}
	n := 0
	for _, m := range body.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// membersBody is the answer of GET /cluster/members.
type membersBody struct {
	OwnedBytesAsOf string
	Members        []struct {
		Name                    string
		StoredBytes, OwnedBytes int64
	}
}

// ownedSettled polls nd's /cluster/members until its owned bytes are
// computed and add up to twice the bytes nd stores (with replicas 2, every
// blob has two owners), and returns that answer and the bytes stored. The
// node computes the figures in the background, seconds after its store
// changed.
func ownedSettled(t *testing.T, nd *clusterNode) (membersBody, int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var body membersBody
		resp, err := http.Get(nd.AdminURL + "/cluster/members")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		stored := int64(metric(t, scrape(t, nd.Berth), "berth_store_bytes"))
		var owned int64
		for _, m := range body.Members {
			owned += m.OwnedBytes
		}
		if body.OwnedBytesAsOf != "" && owned == 2*stored {
			return body, stored
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: owned bytes %d as of %q, want twice the %d stored: %+v", nd.AdminURL, owned, body.OwnedBytesAsOf, stored, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func twentyLayers(t *testing.T, seed uint64) v1.Image {
	sizes := make([]int, 20)
	for i := range sizes {
		sizes[i] = 64<<10 + i*1024
	}
	return testreg.Image(t, seed, sizes...)
}

// TestClusterMorningStorm: 30 clients spread over three nodes pull the same
// cold 20-layer image at once; the upstream sees one GET per blob and one
// manifest fetch, and every client gets the right digests.
func TestClusterMorningStorm(t *testing.T) {
	up := testreg.Start(t)
	img := twentyLayers(t, 41)
	want := up.Push(t, "team/storm", "v1", img)
	nodes := startCluster(t, 3, up.URL, "")
	up.Reset()
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := testreg.PullAll(nodes[i%3].Addr + "/team/storm:v1")
			if err == nil && d != want {
				err = fmt.Errorf("digest %s, want %s", d, want)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	counts := up.PerPath()
	blobGets, manifestGets := 0, 0
	for p, n := range counts {
		switch {
		case strings.HasPrefix(p, "GET ") && strings.Contains(p, "/blobs/"):
			blobGets++
			if n != 1 {
				t.Errorf("%s: %d upstream requests, want 1", p, n)
			}
		case strings.HasPrefix(p, "GET ") && strings.Contains(p, "/manifests/"):
			manifestGets += n
		}
	}
	if blobGets != 20 || manifestGets != 1 {
		t.Fatalf("upstream saw %d distinct blob GETs and %d manifest GETs, want 20 and 1: %v", blobGets, manifestGets, counts)
	}

	// Every node now serves the image with no upstream request.
	up.Reset()
	for _, nd := range nodes {
		if d, err := testreg.PullAll(nd.Addr + "/team/storm:v1"); err != nil || d != want {
			t.Fatalf("warm pull from %s: %v %v", nd.Addr, d, err)
		}
	}
	if n := up.Count("total"); n != 0 {
		t.Fatalf("warm pulls made %d upstream requests: %v", n, up.Requests())
	}
}

// TestClusterPeersServeEachOther: a cold pull on A, then pulls on B and C
// come from peers; the upstream sees nothing new.
func TestClusterPeersServeEachOther(t *testing.T) {
	up := testreg.Start(t)
	img := twentyLayers(t, 42)
	want := up.Push(t, "team/peer", "v1", img)
	nodes := startCluster(t, 3, up.URL, "")
	if d, err := testreg.PullAll(nodes[0].Addr + "/team/peer:v1"); err != nil || d != want {
		t.Fatalf("pull on A: %v %v", d, err)
	}
	up.Reset()
	for _, nd := range nodes[1:] {
		if d, err := testreg.PullAll(nd.Addr + "/team/peer:v1"); err != nil || d != want {
			t.Fatalf("pull on %s: %v %v", nd.Addr, d, err)
		}
	}
	if n := up.Count("total"); n != 0 {
		t.Fatalf("pulls on B and C reached the upstream %d times: %v", n, up.Requests())
	}
	// Each node holds every layer now; ownership splits them, replicas 2:
	// node A's owned bytes add up to twice what it holds, once its
	// background computation has seen the pulls.
	members, stored := ownedSettled(t, nodes[0])
	if len(members.Members) != 3 || stored == 0 {
		t.Fatalf("members %+v: node A stores %d", members, stored)
	}
	s := scrape(t, nodes[1].Berth) + scrape(t, nodes[2].Berth)
	if !strings.Contains(s, `berth_bytes_served_total{source="peer"}`) {
		t.Fatal("no bytes counted as served from peers")
	}
}
