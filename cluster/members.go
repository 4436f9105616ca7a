package cluster

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Member states. memberlist v0.7.0 does not expose suspicion through its
// public API, so a suspected node stays "alive" until it is declared dead.
const (
	StateAlive = "alive"
	StateDead  = "dead" // failed: declared dead by the failure detector
	StateLeft  = "left" // left gracefully (or announced it is leaving)
)

// departedRetention is how long dead and left members stay listed.
const departedRetention = 10 * time.Minute

// Member is one node as this node sees it.
type Member struct {
	Name       string
	GossipAddr string // host:port
	PeerAddr   string // host:port of the peer HTTP API; empty if its metadata is unknown
	Version    string
	State      string // StateAlive, StateDead or StateLeft
	Stats      NodeStats
	Self       bool
}

// EventType says what changed about a member.
type EventType int

const (
	EventJoin   EventType = iota + 1 // became alive
	EventLeave                       // stopped being alive: died or left (see Member.State)
	EventUpdate                      // alive, metadata changed
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	}
	return "unknown"
}

// memberChange is one change of a member, logged at debug level.
type memberChange struct {
	Type   EventType
	Member Member
}

type entry struct {
	name, addr string
	meta       nodeMeta
	state      string
	since      time.Time
}

// view is this node's membership table, fed only by the event loop.
type view struct {
	self string

	mu    sync.RWMutex
	nodes map[string]*entry
}

func newView(self string) *view { return &view{self: self, nodes: map[string]*entry{}} }

func (v *view) member(e *entry) Member {
	return Member{
		Name: e.name, GossipAddr: e.addr, PeerAddr: e.meta.PeerAddr, Version: e.meta.Version,
		State: e.state, Stats: NodeStats{StoredBytes: e.meta.StoredBytes, Blobs: e.meta.Blobs},
		Self: e.name == v.self,
	}
}

// event turns a state transition into a public event, if it is one.
func (v *view) event(old string, e *entry) (memberChange, bool) {
	var t EventType
	switch {
	case old != StateAlive && e.state == StateAlive:
		t = EventJoin
	case old == StateAlive && e.state != StateAlive:
		t = EventLeave
	case old == StateAlive:
		t = EventUpdate
	default:
		return memberChange{}, false
	}
	return memberChange{Type: t, Member: v.member(e)}, true
}

// apply records what memberlist reported.
func (v *view) apply(ev nodeEvent, now time.Time) (memberChange, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.nodes[ev.name]
	if e == nil {
		e = &entry{name: ev.name}
		v.nodes[ev.name] = e
	}
	old, oldAddr, oldMeta := e.state, e.addr, e.meta
	e.addr = ev.addr
	if m, ok := decodeMeta(ev.meta); ok {
		e.meta = m
	}
	switch {
	case ev.kind != EventLeave && !e.meta.Leaving:
		e.state = StateAlive
	case e.meta.Leaving:
		e.state = StateLeft
	default:
		e.state = StateDead
	}
	if e.state != old {
		e.since = now
	} else if e.addr == oldAddr && e.meta == oldMeta {
		return memberChange{}, false // nothing new (e.g. self, recorded by Start)
	}
	return v.event(old, e)
}

// reconcile aligns liveness with memberlist's list of live node names
// (the only field of memberlist.Members() that is safe to read). Members
// alive here but gone there are marked dead or left; live names that are
// not alive here are revived only when addMissing is set (events were
// dropped), since otherwise their join event is still on its way. Old
// departed entries are forgotten.
func (v *view) reconcile(live map[string]bool, addMissing bool, now time.Time) []memberChange {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []memberChange
	for name, e := range v.nodes {
		old := e.state
		switch {
		case e.state == StateAlive && !live[name]:
			e.state = StateDead
			if e.meta.Leaving {
				e.state = StateLeft
			}
		case e.state != StateAlive && live[name] && addMissing:
			e.state = StateAlive
		case e.state != StateAlive && now.Sub(e.since) > departedRetention:
			delete(v.nodes, name)
			continue
		}
		if e.state != old {
			e.since = now
			if ev, ok := v.event(old, e); ok {
				out = append(out, ev)
			}
		}
	}
	if addMissing {
		for name := range live {
			if v.nodes[name] == nil {
				e := &entry{name: name, state: StateAlive, since: now}
				v.nodes[name] = e
				ev, _ := v.event("", e)
				out = append(out, ev)
			}
		}
	}
	return out
}

// setSelf records the local node directly (Start and Shutdown).
func (v *view) setSelf(addr string, meta nodeMeta, state string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.nodes[v.self]
	if e == nil {
		e = &entry{name: v.self}
		v.nodes[v.self] = e
	}
	if e.state != state {
		e.since = now
	}
	e.addr, e.meta, e.state = addr, meta, state
}

func (v *view) selfState() string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if e := v.nodes[v.self]; e != nil {
		return e.state
	}
	return StateAlive
}

func (v *view) members() []Member {
	v.mu.RLock()
	out := make([]Member, 0, len(v.nodes))
	for _, e := range v.nodes {
		out = append(out, v.member(e))
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (v *view) alive() (n int, addrs map[string]bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	addrs = map[string]bool{}
	for _, e := range v.nodes {
		if e.state == StateAlive {
			n++
			addrs[e.addr] = true
		}
	}
	return n, addrs
}

// owners returns the top n alive members for key by rendezvous hashing.
func (v *view) owners(key string, n int) []Member {
	v.mu.RLock()
	defer v.mu.RUnlock()
	cands := make([]scored, 0, len(v.nodes))
	for _, e := range v.nodes {
		if e.state == StateAlive {
			cands = append(cands, scored{name: e.name, score: score(e.name, key)})
		}
	}
	top := topScores(cands, n)
	out := make([]Member, len(top))
	for i, c := range top {
		out[i] = v.member(v.nodes[c.name])
	}
	return out
}

// Rendezvous (highest-random-weight) hashing: every node gets the weight
// xxhash64(node name, 0x00, key); a key's owners are the nodes with the
// highest weights, ties broken by name. Every node computes the same
// order from the same member names, and a membership change moves only
// the keys whose top n contained the node that left, or is beaten by the
// node that joined.

type scored struct {
	name  string
	score uint64
}

func score(name, key string) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(name)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(key)
	return d.Sum64()
}

// topScores sorts cands best first and keeps at most n.
func topScores(cands []scored, n int) []scored {
	slices.SortFunc(cands, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	return cands[:min(n, len(cands))]
}

// Rank returns at most n of names, best first, in the order Owners ranks
// members for key. Tests and tools use it to know a key's owners without
// a running cluster.
func Rank(names []string, key string, n int) []string {
	cands := make([]scored, len(names))
	for i, name := range names {
		cands[i] = scored{name: name, score: score(name, key)}
	}
	top := topScores(cands, n)
	out := make([]string, len(top))
	for i, c := range top {
		out[i] = c.name
	}
	return out
}
