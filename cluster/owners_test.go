package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

func randomKeys(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("sha256:%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	}
	return keys
}

var four = []string{"node-1", "node-2", "node-3", "node-4"}

func TestRankDistribution(t *testing.T) {
	keys := randomKeys(10000)
	counts := map[string]int{}
	for _, k := range keys {
		counts[Rank(four, k, 1)[0]]++
	}
	for _, n := range four {
		if share := float64(counts[n]) / float64(len(keys)); share < 0.20 || share > 0.30 {
			t.Errorf("%s is first owner of %.1f%% of keys, want 25%%±5%%", n, 100*share)
		}
	}
	t.Logf("first owners: %v", counts)
}

func TestRankRemoveNode(t *testing.T) {
	keys := randomKeys(10000)
	for _, gone := range four {
		t.Run("without "+gone, func(t *testing.T) {
			rest := slices.DeleteFunc(slices.Clone(four), func(n string) bool { return n == gone })
			moved := 0
			for _, k := range keys {
				before, after := Rank(four, k, 2), Rank(rest, k, 2)
				switch {
				case !slices.Contains(before, gone):
					if !slices.Equal(before, after) {
						t.Fatalf("%s: owners %v -> %v though %s did not own it", k, before, after, gone)
					}
				case before[0] == gone:
					moved++
					if after[0] != before[1] {
						t.Fatalf("%s: owners %v -> %v; the second owner should take over", k, before, after)
					}
				default: // gone was second: first stays
					if after[0] != before[0] {
						t.Fatalf("%s: owners %v -> %v", k, before, after)
					}
				}
			}
			if share := float64(moved) / float64(len(keys)); share < 0.20 || share > 0.30 {
				t.Errorf("first owner moved for %.1f%% of keys, want about 25%%", 100*share)
			}
		})
	}
}

func TestRankAddNode(t *testing.T) {
	keys := randomKeys(10000)
	five := append(slices.Clone(four), "node-5")
	moved := 0
	for _, k := range keys {
		before, after := Rank(four, k, 1)[0], Rank(five, k, 1)[0]
		if before != after {
			if after != "node-5" {
				t.Fatalf("%s moved %s -> %s, not to the new node", k, before, after)
			}
			moved++
		}
	}
	if share := float64(moved) / float64(len(keys)); share < 0.17 || share > 0.23 {
		t.Errorf("%.1f%% of keys moved to the new node, want about 1/5", 100*share)
	}
}

func TestRankDeterministic(t *testing.T) {
	// Pinned values: the hash must never change between builds, or nodes
	// of different versions would disagree on owners.
	tests := []struct {
		name string
		key  string
		want []string
	}{
		{name: "digest", key: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
			want: []string{"node-2", "node-1", "node-3", "node-4"}},
		{name: "empty key", key: "", want: []string{"node-3", "node-1", "node-2", "node-4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Rank(four, tt.key, 4); !slices.Equal(got, tt.want) {
				t.Errorf("Rank = %v, want %v", got, tt.want)
			}
			shuffled := []string{"node-3", "node-1", "node-4", "node-2"}
			if got := Rank(shuffled, tt.key, 4); !slices.Equal(got, tt.want) {
				t.Errorf("Rank depends on input order: %v", got)
			}
		})
	}
	// The documented formula: xxhash64(name + "\x00" + key).
	if got, want := score("node-1", "sha256:abc"), xxhash.Sum64String("node-1\x00sha256:abc"); got != want || got != 8296313152801961089 {
		t.Errorf("score = %d, want %d", got, want)
	}
}

func TestViewOwners(t *testing.T) {
	now := time.Now()
	v := newView("node-1")
	for i, n := range four {
		v.apply(nodeEvent{kind: EventJoin, name: n, addr: fmt.Sprintf("127.0.0.1:%d", 7000+i),
			meta: nodeMeta{PeerAddr: fmt.Sprintf("127.0.0.1:%d", 5000+i)}.encode()}, now)
	}
	v.apply(nodeEvent{kind: EventLeave, name: "node-3", addr: "127.0.0.1:7002"}, now)
	alive := []string{"node-1", "node-2", "node-4"}
	tests := []struct {
		name     string
		replicas int
		want     int
	}{
		{name: "one", replicas: 1, want: 1},
		{name: "two", replicas: 2, want: 2},
		{name: "all alive", replicas: 3, want: 3},
		{name: "capped by members", replicas: 10, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range randomKeys(100) {
				got := v.owners(k, tt.replicas)
				if want := Rank(alive, k, tt.want); !slices.Equal(ownerNames(got), want) {
					t.Fatalf("owners(%s) = %v, want %v", k, ownerNames(got), want)
				}
				for _, m := range got {
					if m.PeerAddr == "" || m.State != StateAlive || m.Self != (m.Name == "node-1") {
						t.Fatalf("owner %+v", m)
					}
				}
			}
		})
	}
}

func TestViewStates(t *testing.T) {
	now := time.Now()
	meta := func(leaving bool) []byte { return nodeMeta{PeerAddr: "p:1", Leaving: leaving}.encode() }
	tests := []struct {
		name      string
		events    []nodeEvent
		wantState string
		wantTypes []EventType
	}{
		{name: "join", events: []nodeEvent{{kind: EventJoin, meta: meta(false)}},
			wantState: StateAlive, wantTypes: []EventType{EventJoin}},
		{name: "crash", events: []nodeEvent{{kind: EventJoin, meta: meta(false)}, {kind: EventLeave, meta: meta(false)}},
			wantState: StateDead, wantTypes: []EventType{EventJoin, EventLeave}},
		{name: "graceful leave", events: []nodeEvent{{kind: EventJoin, meta: meta(false)}, {kind: EventUpdate, meta: meta(true)}, {kind: EventLeave, meta: meta(true)}},
			wantState: StateLeft, wantTypes: []EventType{EventJoin, EventLeave}},
		{name: "restart", events: []nodeEvent{{kind: EventJoin, meta: meta(false)}, {kind: EventLeave, meta: meta(true)}, {kind: EventJoin, meta: meta(false)}},
			wantState: StateAlive, wantTypes: []EventType{EventJoin, EventLeave, EventJoin}},
		{name: "update", events: []nodeEvent{{kind: EventJoin, meta: meta(false)}, {kind: EventUpdate, meta: nodeMeta{PeerAddr: "p:2"}.encode()}},
			wantState: StateAlive, wantTypes: []EventType{EventJoin, EventUpdate}},
		{name: "repeated", events: []nodeEvent{{kind: EventJoin, meta: meta(false)}, {kind: EventUpdate, meta: meta(false)}, {kind: EventJoin, meta: meta(false)}},
			wantState: StateAlive, wantTypes: []EventType{EventJoin}},
		{name: "bad metadata", events: []nodeEvent{{kind: EventJoin, meta: []byte("{")}},
			wantState: StateAlive, wantTypes: []EventType{EventJoin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView("self")
			var types []EventType
			for _, ev := range tt.events {
				ev.name = "n"
				if out, ok := v.apply(ev, now); ok {
					types = append(types, out.Type)
				}
			}
			if got := v.members()[0].State; got != tt.wantState {
				t.Errorf("state %q, want %q", got, tt.wantState)
			}
			if !slices.Equal(types, tt.wantTypes) {
				t.Errorf("events %v, want %v", types, tt.wantTypes)
			}
		})
	}
}

func TestViewReconcile(t *testing.T) {
	now := time.Now()
	v := newView("a")
	for _, n := range []string{"a", "b", "c"} {
		v.apply(nodeEvent{kind: EventJoin, name: n, meta: nodeMeta{PeerAddr: n + ":1"}.encode()}, now)
	}
	// b's leave event was lost; d joined and its event was lost too.
	live := map[string]bool{"a": true, "c": true, "d": true}
	if evs := v.reconcile(live, false, now); len(evs) != 1 || evs[0].Member.Name != "b" || evs[0].Type != EventLeave {
		t.Errorf("reconcile = %+v", evs)
	}
	if got := states(&Cluster{view: v}); got["b"] != StateDead || got["d"] != "" {
		t.Errorf("after reconcile: %v", got)
	}
	if evs := v.reconcile(live, true, now); len(evs) != 1 || evs[0].Member.Name != "d" || evs[0].Type != EventJoin {
		t.Errorf("reconcile with drops = %+v", evs)
	}
	v.reconcile(live, false, now.Add(departedRetention+time.Second))
	if got := states(&Cluster{view: v}); len(got) != 3 || got["b"] != "" {
		t.Errorf("departed b not forgotten: %v", got)
	}
}

func BenchmarkOwners(b *testing.B) {
	v := newView("node-1")
	for i := range 10 {
		v.apply(nodeEvent{kind: EventJoin, name: fmt.Sprintf("node-%d", i), meta: nodeMeta{PeerAddr: "x:1"}.encode()}, time.Now())
	}
	key := "sha256:" + randomKeys(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		v.owners(key, 2)
	}
}
