package cluster

import (
	"fmt"
	"io"
	"log"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func statsPtr(bytes, blobs int64) *atomic.Pointer[NodeStats] {
	p := &atomic.Pointer[NodeStats]{}
	p.Store(&NodeStats{StoredBytes: bytes, Blobs: blobs})
	return p
}

// TestJoinRetry: node-3 and node-2 start before their seed node-1; the
// background join succeeds once node-1 is up, and every node then sees
// the others' metadata, including refreshed stats.
func TestJoinRetry(t *testing.T) {
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	specs := []testNode{
		{name: "node-1", port: p1, stats: statsPtr(100, 1)},
		{name: "node-2", port: p2, join: []string{addr(p1)}, stats: statsPtr(200, 2)},
		{name: "node-3", port: p3, join: []string{addr(p1)}, stats: statsPtr(300, 3)},
	}
	n3 := start(t, specs[2], WithVersion("v-test"))
	n2 := start(t, specs[1], WithVersion("v-test"))
	consistently(t, "node-3 alone while its seed is down", 400*time.Millisecond, func() error {
		if got := states(n3); len(got) != 1 {
			return fmt.Errorf("node-3 sees %v before its seed started", got)
		}
		return nil
	})
	n1 := start(t, specs[0], WithVersion("v-test"))
	nodes := []*Cluster{n1, n2, n3}

	took := eventually(t, "three alive members everywhere", func() error {
		return converged(nodes, "node-1", "node-2", "node-3")
	})
	t.Logf("converged %s after node-1 started", took)

	metaOK := func() error {
		for _, c := range nodes {
			for i, m := range c.Members() {
				spec := specs[i]
				want := *spec.stats.Load()
				if m.Name != spec.name || m.PeerAddr != spec.peerAddr() || m.GossipAddr != addr(spec.port) ||
					m.Version != "v-test" || m.Stats != want || m.Self != (c == nodes[i]) {
					return fmt.Errorf("%s sees %+v, want %s peer %s stats %+v", c.set.name, m, spec.name, spec.peerAddr(), want)
				}
			}
		}
		return nil
	}
	eventually(t, "metadata", metaOK)

	specs[1].stats.Store(&NodeStats{StoredBytes: 1 << 40, Blobs: 12345})
	eventually(t, "refreshed stats", metaOK)
	if got := n2.Self().Stats; got.Blobs != 12345 {
		t.Errorf("Self().Stats = %+v", got)
	}
}

// TestSecretRequired: nodes without the cluster secret cannot join.
func TestSecretRequired(t *testing.T) {
	p1 := freePort(t)
	n1 := start(t, testNode{name: "node-1", port: p1})
	alone := func() error {
		if got := states(n1); len(got) != 1 {
			return fmt.Errorf("node-1 sees %v", got)
		}
		return nil
	}

	t.Run("other secret", func(t *testing.T) {
		other := start(t, testNode{name: "other", port: freePort(t), join: []string{addr(p1)}, secret: secret(2)})
		consistently(t, "node with another secret stays out", time.Second, func() error {
			if got := states(other); len(got) != 1 {
				return fmt.Errorf("other sees %v", got)
			}
			return alone()
		})
	})

	tests := []struct {
		name string
		key  []byte
	}{
		{name: "no encryption", key: nil},
		{name: "wrong key", key: secret(2)},
		{name: "secret used as the key directly", key: secret(1)},
	}
	for _, tt := range tests {
		t.Run("memberlist "+tt.name, func(t *testing.T) {
			mc := memberlist.DefaultLocalConfig()
			mc.Name = "intruder"
			mc.BindAddr, mc.BindPort = "127.0.0.1", freePort(t)
			mc.SecretKey = tt.key
			mc.Logger = log.New(io.Discard, "", 0)
			ml, err := memberlist.Create(mc)
			if err != nil {
				t.Fatal(err)
			}
			defer ml.Shutdown()
			if n, err := ml.Join([]string{addr(p1)}); err == nil || n != 0 {
				t.Errorf("Join = %d, %v; want an error", n, err)
			}
			consistently(t, "intruder stays out", 300*time.Millisecond, alone)
		})
	}
}

// TestFailure: a node that leaves or dies is seen as such, loses its
// keys, and comes back when it restarts with the same name and address.
func TestFailure(t *testing.T) {
	tests := []struct {
		name     string
		graceful bool
		want     string
	}{
		{name: "graceful shutdown", graceful: true, want: StateLeft},
		{name: "crash", graceful: false, want: StateDead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p1 := freePort(t)
			specs := []testNode{
				{name: "node-1", port: p1},
				{name: "node-2", port: freePort(t), join: []string{addr(p1)}},
				{name: "node-3", port: freePort(t), join: []string{addr(p1)}},
			}
			n1, n2 := start(t, specs[0]), start(t, specs[1])
			n3 := start(t, specs[2])
			eventually(t, "formed", func() error { return converged([]*Cluster{n1, n2, n3}, "node-1", "node-2", "node-3") })

			stop(t, n3, tt.graceful)
			took := eventually(t, "node-3 "+tt.want, func() error {
				for _, c := range []*Cluster{n1, n2} {
					if got := states(c)["node-3"]; got != tt.want {
						return fmt.Errorf("%s sees node-3 %q", c.set.name, got)
					}
				}
				return nil
			})
			t.Logf("node-3 seen %s after %s", tt.want, took)
			if got := n3.Self().State; got != tt.want {
				t.Errorf("stopped node's Self().State = %q, want %q", got, tt.want)
			}
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprintf("sha256:%064d", i)
			}
			eventually(t, "node-1 and node-2 own every key", func() error {
				return ownersAgree([]*Cluster{n1, n2}, keys, "node-1", "node-2")
			})

			n3 = start(t, specs[2])
			nodes := []*Cluster{n1, n2, n3}
			took = eventually(t, "node-3 back", func() error { return converged(nodes, "node-1", "node-2", "node-3") })
			t.Logf("node-3 rejoined after %s", took)
			eventually(t, "the three nodes agree on the owners", func() error {
				return ownersAgree(nodes, keys, "node-1", "node-2", "node-3")
			})
		})
	}
}

// TestOwnersAgree: on a live four-node cluster every node computes the
// same owners, Replicas of them, as Rank does from the members' names.
// The nodes' failure detector is slow, so that a loaded machine does not
// take a live node out while the owners are compared.
func TestOwnersAgree(t *testing.T) {
	p1 := freePort(t)
	var nodes []*Cluster
	var names []string
	for i := range 4 {
		spec := testNode{name: fmt.Sprintf("node-%d", i+1), port: p1}
		if i > 0 {
			spec.port, spec.join = freePort(t), []string{addr(p1)}
		}
		nodes = append(nodes, start(t, spec, withMemberlist(steadyMemberlist)))
		names = append(names, spec.name)
	}
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("sha256:%x", i*7919)
	}
	eventually(t, "every node computes Rank's owners, membership converged", func() error {
		return ownersAgree(nodes, keys, names...)
	})

	firsts := map[string]int{}
	for _, key := range keys {
		want := Rank(names, key, 2)
		if len(want) != 2 || want[0] == want[1] {
			t.Fatalf("Rank(%s) = %v", key, want)
		}
		firsts[want[0]]++
	}
	if len(firsts) != 4 {
		t.Errorf("first owners: %v", firsts)
	}
}

func TestShutdownTwice(t *testing.T) {
	c := start(t, testNode{name: "solo", port: freePort(t)})
	stop(t, c, true)
	stop(t, c, true)
	if err := c.Shutdown(t.Context()); err != nil {
		t.Errorf("third Shutdown: %v", err)
	}
}

// TestOwnersChangedHook: the hook runs once when a member joins and once
// when it leaves, and not for a change of its metadata, which moves no
// key.
func TestOwnersChangedHook(t *testing.T) {
	var calls atomic.Int64
	p1 := freePort(t)
	n1 := start(t, testNode{name: "node-1", port: p1}, withMemberlist(steadyMemberlist), WithOwnersChanged(func() { calls.Add(1) }))
	stats := statsPtr(1, 1)
	n2 := start(t, testNode{name: "node-2", port: freePort(t), join: []string{addr(p1)}, stats: stats}, withMemberlist(steadyMemberlist))
	eventually(t, "formed", func() error { return converged([]*Cluster{n1, n2}, "node-1", "node-2") })
	stats.Store(&NodeStats{StoredBytes: 99, Blobs: 9})
	eventually(t, "node-1 sees node-2's new stats", func() error {
		if got := n1.Members()[1].Stats.Blobs; got != 9 {
			return fmt.Errorf("node-2 blobs %d", got)
		}
		return nil
	})
	// The stats came after the join on the same event loop, which calls
	// the hook before it applies the next event.
	if n := calls.Load(); n != 1 {
		t.Fatalf("after a join and a change of stats: hook called %d times, want 1", n)
	}
	stop(t, n2, true)
	eventually(t, "node-1 sees node-2 left, and the hook ran again", func() error {
		if got, n := states(n1)["node-2"], calls.Load(); got != StateLeft || n != 2 {
			return fmt.Errorf("node-1 sees node-2 %q, hook called %d times", got, n)
		}
		return nil
	})
}
