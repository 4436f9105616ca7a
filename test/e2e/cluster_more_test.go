package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
	"berth/test/testport"
	"berth/test/testreg"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// cmSecretHex is the cluster secret startCluster and cmStartCluster write.
var cmSecretHex = strings.Repeat("ab", 32)

// cmOpts configures cmStartCluster.
type cmOpts struct {
	n     int
	extra string         // extra top-level config
	gid   map[int]uint32 // node index -> primary group its process runs with
}

// cmStartCluster is startCluster with extra top-level config and
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
		nodes[i] = &clusterNode{gossip: fmt.Sprintf("%s:%d", host, testport.Free(t)), peer: fmt.Sprintf("%s:%d", host, testport.Free(t))}
		gossips = append(gossips, nodes[i].gossip)
	}
	for i, nd := range nodes {
		cfg := fmt.Sprintf("cluster:\n  nodeName: node%d\n  gossipAddr: %q\n  peerAddr: %q\n  secretFile: %q\n  replicas: 2\n  join: [%s]\n",
			i, nd.gossip, nd.peer, secret, `"`+strings.Join(gossips, `","`)+`"`)
		cfg += "rateLimit:\n  disabled: true\n" + o.extra + "upstreams:\n" + upstreamConfig("hub", "hub", "docker.io", upURL, true, "")
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

type cmCounter struct{ n *atomic.Int64 }

func (c cmCounter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// cmPullEach pulls ref from every node, one after the other.
func cmPullEach(t *testing.T, nodes []*clusterNode, ref string, want v1.Hash) {
	t.Helper()
	for _, nd := range nodes {
		if d, err := testreg.PullAll(nd.Addr + "/" + ref); err != nil || d != want {
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
			d, err := testreg.PullAll(nd.Addr + "/" + ref)
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
// and peer addresses is dropped, and so is every packet c's process (told
// apart by its primary group gid) sends to the others' gossip and peer
// ports. It returns heal, which removes the rules (also run at cleanup).
// The first rules name c's address, not only its ports: c's admin and
// registry ports are picked on 127.0.0.1 before c binds its gossip and
// peer ports on its own address, so one of them can be the same number,
// and a rule by port alone then cut the test off from c's admin listener.
func cmPartition(t *testing.T, c *clusterNode, others []*clusterNode, gid uint32) (heal func()) {
	t.Helper()
	clients.LookBin(t, "iptables")
	var tcpPorts, udpPorts []string
	for _, o := range others {
		tcpPorts = append(tcpPorts, cmPort(t, o.gossip), cmPort(t, o.peer))
		udpPorts = append(udpPorts, cmPort(t, o.gossip))
	}
	g := strconv.FormatUint(uint64(gid), 10)
	host, _, err := net.SplitHostPort(c.gossip)
	if err != nil {
		t.Fatal(err)
	}
	rules := [][]string{
		{"-d", host, "-p", "tcp", "-m", "multiport", "--dports", cmPort(t, c.gossip) + "," + cmPort(t, c.peer), "-j", "DROP"},
		{"-d", host, "-p", "udp", "--dport", cmPort(t, c.gossip), "-j", "DROP"},
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
	gossip := fmt.Sprintf("127.0.0.4:%d", testport.Free(t))
	peer := fmt.Sprintf("127.0.0.4:%d", testport.Free(t))
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
