package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"berth/cluster"
	"berth/test/clients"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// cmSecretHex is the cluster secret startCluster and cmStartCluster write.
var cmSecretHex = strings.Repeat("ab", 32)

// cmOpts configures cmStartCluster.
type cmOpts struct {
	n     int
	rule  string         // extra lines of the upstream rule, e.g. "    ttl: 2s\n"
	extra string         // extra top-level config
	gid   map[int]uint32 // node index -> primary group its process runs with
}

// cmStartCluster is startCluster with the upstream rule's extra lines and
// optional per-node primary groups (so iptables' owner match can tell a
// node's own outgoing packets from the others': on loopback, every dial
// leaves from 127.0.0.1 whatever address the node listens on).
func cmStartCluster(t *testing.T, upURL string, o cmOpts) []*clusterNode {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "cluster.key")
	writeFile(t, secret, cmSecretHex+"\n")
	var gossips []string
	nodes := make([]*clusterNode, o.n)
	for i := range o.n {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		nodes[i] = &clusterNode{gossip: fmt.Sprintf("%s:%d", host, freePort(t)), peer: fmt.Sprintf("%s:%d", host, freePort(t))}
		gossips = append(gossips, nodes[i].gossip)
	}
	for i, nd := range nodes {
		cfg := fmt.Sprintf("cluster:\n  nodeName: node%d\n  gossipAddr: %q\n  peerAddr: %q\n  secretFile: %q\n  replicas: 2\n  join: [%s]\n",
			i, nd.gossip, nd.peer, secret, `"`+strings.Join(gossips, `","`)+`"`)
		cfg += "rateLimit:\n  disabled: true\n" + o.extra + "upstreams:\n" + upstreamConfig("hub", "hub", "docker.io", upURL, true, o.rule)
		if gid, ok := o.gid[i]; ok {
			nd.Berth = cmStartBerthGid(t, cfg, gid)
		} else {
			nd.Berth = StartBerth(t, "", cfg)
		}
	}
	waitMembers(t, nodes, o.n)
	return nodes
}

// cmStartBerthGid is StartBerth for a process running as root with primary
// group gid. (Berth.start would drop the group on a restart.)
func cmStartBerthGid(t *testing.T, configBody string, gid uint32) *Berth {
	t.Helper()
	return StartBerth(t, "", configBody, func(b *Berth) { b.Credential = &syscall.Credential{Uid: 0, Gid: gid} })
}

// cmWaitAlive waits until every node in nodes sees want alive members and
// returns how long that took.
func cmWaitAlive(t *testing.T, nodes []*clusterNode, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for _, nd := range nodes {
		for aliveMembers(nd) != want {
			if time.Since(start) > limit {
				t.Fatalf("%s (gossip %s) sees %d alive members after %v, want %d", nd.Addr, nd.gossip, aliveMembers(nd), limit, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// cmPullCounting is pullAll that adds the layer bytes read to n.
func cmPullCounting(ref string, n *atomic.Int64) (v1.Hash, error) {
	img, err := crane.Pull(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest at EOF
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(cmCounter{n}, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

type cmCounter struct{ n *atomic.Int64 }

func (c cmCounter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// cmPullEach pulls ref from every node, one after the other.
func cmPullEach(t *testing.T, nodes []*clusterNode, ref string, want v1.Hash) {
	t.Helper()
	for _, nd := range nodes {
		if d, err := pullAll(nd.Addr + "/" + ref); err != nil || d != want {
			t.Fatalf("pull %s from %s: %v %v, want %s", ref, nd.Addr, d, err, want)
		}
	}
}

// cmPullConcurrently pulls ref from every node at once.
func cmPullConcurrently(t *testing.T, nodes []*clusterNode, ref string, want v1.Hash) {
	t.Helper()
	errs := make(chan error, len(nodes))
	for _, nd := range nodes {
		go func() {
			d, err := pullAll(nd.Addr + "/" + ref)
			if err == nil && d != want {
				err = fmt.Errorf("digest %s, want %s", d, want)
			}
			if err != nil {
				err = fmt.Errorf("pull %s from %s: %w", ref, nd.Addr, err)
			}
			errs <- err
		}()
	}
	for range nodes {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("pulls of %s did not finish within 30s", ref)
		}
	}
}

func cmPort(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cmPartition cuts node c off from the others: every packet to c's gossip
// and peer ports is dropped, and so is every packet c's process (told
// apart by its primary group gid) sends to the others' gossip and peer
// ports. It returns heal, which removes the rules (also run at cleanup).
func cmPartition(t *testing.T, c *clusterNode, others []*clusterNode, gid uint32) (heal func()) {
	t.Helper()
	clients.LookBin(t, "iptables")
	var tcpPorts, udpPorts []string
	for _, o := range others {
		tcpPorts = append(tcpPorts, cmPort(t, o.gossip), cmPort(t, o.peer))
		udpPorts = append(udpPorts, cmPort(t, o.gossip))
	}
	g := strconv.FormatUint(uint64(gid), 10)
	rules := [][]string{
		{"-p", "tcp", "-m", "multiport", "--dports", cmPort(t, c.gossip) + "," + cmPort(t, c.peer), "-j", "DROP"},
		{"-p", "udp", "--dport", cmPort(t, c.gossip), "-j", "DROP"},
		{"-m", "owner", "--gid-owner", g, "-p", "tcp", "-m", "multiport", "--dports", strings.Join(tcpPorts, ","), "-j", "DROP"},
		{"-m", "owner", "--gid-owner", g, "-p", "udp", "-m", "multiport", "--dports", strings.Join(udpPorts, ","), "-j", "DROP"},
	}
	iptables := func(op string, r []string) error {
		out, err := exec.Command("iptables", append([]string{"-w", op, "OUTPUT"}, r...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s OUTPUT %s: %v: %s", op, strings.Join(r, " "), err, out)
		}
		return nil
	}
	var mu sync.Mutex
	added := 0
	heal = func() {
		mu.Lock()
		defer mu.Unlock()
		for ; added > 0; added-- {
			if err := iptables("-D", rules[added-1]); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(heal)
	for _, r := range rules {
		if err := iptables("-I", r); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		added++
		mu.Unlock()
	}
	return heal
}

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
				d, err := pullAll(nd.Addr + "/team/warm:v1")
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
			d, err := cmPullCounting(byName[name].Addr+"/team/big:v1", counts[name])
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
	t.Logf("upstream requests for the cold image: %v", perPath(up))
	// F's fetch, cut when it died, and the second owner's resume; the
	// other node resumed from the second owner.
	if n := perPath(up)["GET /v2/team/big/blobs/"+ld.String()]; n < 1 || n > 2 {
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

// cmSlowBlobs makes the upstream send blobs at 1 MiB per perMiB, whatever
// the size of the writes: testreg's SlowBlobs pauses after every Write, and
// its registry writes a Range answer in 32 KiB pieces, so a resumed stream
// would crawl at 32 KiB per pause.
func cmSlowBlobs(up *testreg.Registry, perMiB time.Duration) {
	up.Mutate(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodGet || testreg.Kind(req.URL.Path) != "blobs" {
			return false
		}
		up.Serve(&cmRateWriter{ResponseWriter: w, perMiB: perMiB}, req)
		return true
	})
}

type cmRateWriter struct {
	http.ResponseWriter
	perMiB  time.Duration
	written int64
}

func (w *cmRateWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), int(1<<20-w.written%(1<<20)))
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		w.written += int64(m)
		if err != nil {
			return n, err
		}
		if w.written%(1<<20) == 0 {
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(w.perMiB)
		}
		p = p[k:]
	}
	return n, nil
}

func cmWaitGroup(t *testing.T, wg *sync.WaitGroup, limit time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("clients did not finish within %v", limit)
	}
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
	for p, n := range perPath(up) {
		if strings.HasPrefix(p, "GET ") && strings.Contains(p, "/blobs/") {
			blobGets++
			if n != 1 {
				t.Errorf("%s: %d upstream requests, want 1", p, n)
			}
		}
	}
	if blobGets != 20 { // the layers (crane reads no config here)
		t.Errorf("C made %d distinct blob GETs upstream, want 20: %v", blobGets, perPath(up))
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

// cmMemberNames lists the members nd knows of, in any state.
func cmMemberNames(t *testing.T, nd *clusterNode) []string {
	t.Helper()
	resp, err := http.Get(nd.AdminURL + "/cluster/members")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Members []struct{ Name string } }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range body.Members {
		names = append(names, m.Name)
	}
	return names
}

// TestClusterSecretRequired: a node with another secret cannot join, and
// the peer API refuses unsigned or wrongly signed requests with 401
// UNAUTHORIZED.
func TestClusterSecretRequired(t *testing.T) {
	up := testreg.Start(t)
	img := testreg.Image(t, 71, 3000, 4000)
	want := up.Push(t, "team/x", "v1", img)
	nodes := startCluster(t, 3, up.URL, "")
	cmPullEach(t, nodes[:1], "team/x:v1", want)

	other := filepath.Join(t.TempDir(), "other.key")
	otherHex := strings.Repeat("cd", 32)
	writeFile(t, other, otherHex+"\n")
	gossip := fmt.Sprintf("127.0.0.4:%d", freePort(t))
	peer := fmt.Sprintf("127.0.0.4:%d", freePort(t))
	var join []string
	for _, nd := range nodes {
		join = append(join, nd.gossip)
	}
	cfg := fmt.Sprintf("cluster:\n  nodeName: node3\n  gossipAddr: %q\n  peerAddr: %q\n  secretFile: %q\n  replicas: 2\n  join: [%s]\n",
		gossip, peer, other, `"`+strings.Join(join, `","`)+`"`)
	cfg += "rateLimit:\n  disabled: true\nupstreams:\n" + upstreamConfig("hub", "hub", "docker.io", up.URL, true, "")
	intruder := &clusterNode{Berth: StartBerth(t, "", cfg), gossip: gossip, peer: peer}

	// Give it time to try (its join loop retries with backoff from 200 ms).
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		for _, nd := range nodes {
			if n := aliveMembers(nd); n != 3 {
				t.Fatalf("%s sees %d alive members with a wrong-secret node around, want 3", nd.Addr, n)
			}
		}
		if n := aliveMembers(intruder); n != 1 {
			t.Fatalf("the node with another secret sees %d alive members, want 1 (itself)", n)
		}
	}
	for _, nd := range nodes {
		if names := cmMemberNames(t, nd); !slices.Equal(names, []string{"node0", "node1", "node2"}) {
			t.Errorf("%s lists members %v", nd.Addr, names)
		}
	}
	if names := cmMemberNames(t, intruder); !slices.Equal(names, []string{"node3"}) {
		t.Errorf("the node with another secret lists members %v", names)
	}
	if !strings.Contains(intruder.Log(), "joining cluster failed") {
		t.Errorf("the node with another secret logged no failed join:\n%s", lastLines(intruder.Log(), 20))
	}

	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	uri := "/v2/hub/team/x/blobs/" + ld.String()
	get := func(sign func(*http.Request)) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+nodes[0].peer+uri, nil)
		if sign != nil {
			sign(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	signed := func(secretHex, node string) func(*http.Request) {
		secret, _ := hex.DecodeString(secretHex)
		return func(req *http.Request) { cluster.SignRequest(req, secret, node, time.Now()) }
	}
	for name, sign := range map[string]func(*http.Request){
		"unsigned":                 nil,
		"signed with other secret": signed(otherHex, "node3"),
	} {
		resp, body := get(sign)
		var eb struct {
			Errors []struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &eb) != nil || len(eb.Errors) == 0 || eb.Errors[0].Code != "UNAUTHORIZED" {
			t.Errorf("%s GET %s on the peer API: %d %s, want 401 with an UNAUTHORIZED error", name, uri, resp.StatusCode, body)
		}
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Berth-Peer") {
			t.Errorf("%s: WWW-Authenticate %q", name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Control: the same request signed with the cluster's secret is served.
	if resp, body := get(signed(cmSecretHex, "node1")); resp.StatusCode != http.StatusOK || int64(len(body)) != 3000 {
		t.Errorf("correctly signed GET %s: %d, %d bytes", uri, resp.StatusCode, len(body))
	}
}

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
