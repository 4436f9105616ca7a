package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// Test intervals: failures are detected within about two seconds.
const (
	testProbe  = 100 * time.Millisecond
	testGossip = 20 * time.Millisecond
	waitLimit  = 10 * time.Second // bound for every eventually
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, SecretSize) }

// freePort returns a port that was free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// testLogger logs Info and above to the test: memberlist's own lines are
// at Debug, so goroutines memberlist leaves briefly never log to a
// finished test.
func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
}

// fastMemberlist shortens the timeouts that tests would otherwise wait on.
func fastMemberlist(mc *memberlist.Config) {
	mc.TCPTimeout = time.Second
	mc.PushPullInterval = time.Second
	mc.GossipToTheDeadTime = 2 * time.Second
}

// steadyMemberlist is fastMemberlist with a failure detector that a
// loaded machine does not trip: for tests in which no node fails, so that
// a late probe answer does not take a live node out of the owners.
func steadyMemberlist(mc *memberlist.Config) {
	fastMemberlist(mc)
	mc.ProbeInterval, mc.ProbeTimeout = time.Second, time.Second
}

// testNode describes one node of a test cluster.
type testNode struct {
	name   string
	port   int
	join   []string
	secret []byte
	stats  *atomic.Pointer[NodeStats]
	// peer, if set, is the peer API's address (default: from port).
	peer string
	// onLog, if set, sees every entry the node logs at Info and above.
	onLog func(zapcore.Entry)
}

func (n testNode) config() Config {
	s := n.secret
	if s == nil {
		s = secret(1)
	}
	return Config{
		NodeName: n.name, GossipAddr: addr(n.port), PeerAddr: n.peerAddr(), Join: n.join, Secret: s,
		ProbeInterval: testProbe, GossipInterval: testGossip,
	}
}

func (n testNode) peerAddr() string {
	if n.peer != "" {
		return n.peer
	}
	return "127.0.0.1:" + strconv.Itoa(40000+n.port%20000)
}

// start starts n and shuts it down when the test ends.
func start(t *testing.T, n testNode, opts ...Option) *Cluster {
	t.Helper()
	opts = append([]Option{withRejoinInterval(500 * time.Millisecond), withMemberlist(fastMemberlist)}, opts...)
	if n.stats != nil {
		opts = append(opts, WithStats(func() NodeStats { return *n.stats.Load() }, 50*time.Millisecond))
	}
	log := testLogger(t)
	if n.onLog != nil {
		log = log.WithOptions(zap.Hooks(func(e zapcore.Entry) error { n.onLog(e); return nil }))
	}
	c, err := Start(t.Context(), n.config(), log.Named(n.name), opts...)
	if err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	t.Cleanup(func() { stop(t, c, true) })
	return c
}

func stop(t *testing.T, c *Cluster, graceful bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.shutdown(ctx, graceful); err != nil {
		t.Errorf("shutdown %s: %v", c.set.name, err)
	}
}

// eventually polls check until it returns nil, failing after waitLimit.
func eventually(t *testing.T, what string, check func() error) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(begin)
		}
		if time.Since(begin) > waitLimit {
			t.Fatalf("%s: not within %s: %v", what, waitLimit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consistently fails as soon as check fails during d.
func consistently(t *testing.T, what string, d time.Duration, check func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// ownersAgree checks that every node computes the same Replicas owners
// for each key as Rank does from want, the alive members' names, and
// that the membership was converged to want before and after: a node that
// a slow probe takes out for a moment changes the owners, and the check
// is then to be tried again.
func ownersAgree(nodes []*Cluster, keys []string, want ...string) error {
	if err := converged(nodes, want...); err != nil {
		return fmt.Errorf("before: %w", err)
	}
	mismatch := func() error {
		for _, key := range keys {
			ranked := Rank(want, key, 2)
			for _, c := range nodes {
				if got := ownerNames(c.Owners(key)); !slices.Equal(got, ranked) {
					return fmt.Errorf("Owners(%s) on %s = %v, Rank says %v", key, c.set.name, got, ranked)
				}
			}
		}
		return nil
	}()
	if err := converged(nodes, want...); err != nil {
		return fmt.Errorf("after: %w", err)
	}
	return mismatch
}

// states returns name -> state as c sees it.
func states(c *Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Members() {
		out[m.Name] = m.State
	}
	return out
}

// converged checks that every node sees exactly want alive.
func converged(nodes []*Cluster, want ...string) error {
	for _, c := range nodes {
		var alive []string
		for _, m := range c.Members() {
			if m.State == StateAlive {
				alive = append(alive, m.Name)
			}
		}
		if fmt.Sprint(alive) != fmt.Sprint(want) {
			return fmt.Errorf("%s sees alive %v, want %v", c.set.name, alive, want)
		}
	}
	return nil
}

func ownerNames(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}
