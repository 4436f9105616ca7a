package cluster

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// nodeMeta is what a node publishes about itself in memberlist's node
// metadata: compact JSON, well under memberlist.MetaMaxSize (checked at
// Start for the worst case).
type nodeMeta struct {
	PeerAddr    string `json:"p"`
	Version     string `json:"v,omitempty"`
	StoredBytes int64  `json:"b,omitempty"`
	Blobs       int64  `json:"n,omitempty"`
	// Leaving is set just before a graceful Leave so peers can tell a
	// node that left from one that died.
	Leaving bool `json:"l,omitempty"`
}

func (m nodeMeta) encode() []byte {
	b, _ := json.Marshal(m) // cannot fail: strings and integers only
	return b
}

func decodeMeta(b []byte) (nodeMeta, bool) {
	var m nodeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nodeMeta{}, false
	}
	return m, true
}

// nodeEvent is a copy of what memberlist reported about one node.
type nodeEvent struct {
	kind EventType
	name string
	addr string
	meta []byte
}

// delegate implements memberlist.Delegate and memberlist.EventDelegate.
// memberlist calls it with its own locks held, so every callback only
// copies and hands off: nothing here blocks or calls back into memberlist.
type delegate struct {
	meta    atomic.Pointer[[]byte] // encoded local metadata
	events  chan nodeEvent         // to Cluster.eventLoop
	resync  chan struct{}          // capacity 1: an event was dropped
	dropped atomic.Uint64          // node events dropped because events was full
	msgs    atomic.Uint64          // user messages received (unused protocol)
}

func newDelegate(queue int) *delegate {
	return &delegate{events: make(chan nodeEvent, queue), resync: make(chan struct{}, 1)}
}

func (d *delegate) setMeta(b []byte) { d.meta.Store(&b) }

// NodeMeta returns the local metadata. Start guarantees it fits limit;
// should it not, nothing is sent rather than letting memberlist panic.
func (d *delegate) NodeMeta(limit int) []byte {
	p := d.meta.Load()
	if p == nil || len(*p) > limit {
		return nil
	}
	return *p
}

// NotifyMsg receives user messages; Berth sends none, so they are counted
// and dropped.
func (d *delegate) NotifyMsg([]byte) { d.msgs.Add(1) }

// GetBroadcasts has nothing to piggyback.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState has no state beyond the metadata.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState has nothing to merge.
func (d *delegate) MergeRemoteState([]byte, bool) {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.push(EventJoin, n) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.push(EventLeave, n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.push(EventUpdate, n) }

// push copies n (memberlist reuses and mutates it) and queues it without
// blocking; a full queue drops the event, counts it and asks for a resync.
func (d *delegate) push(kind EventType, n *memberlist.Node) {
	ev := nodeEvent{kind: kind, name: n.Name, addr: n.Address(), meta: bytes.Clone(n.Meta)}
	select {
	case d.events <- ev:
	default:
		d.dropped.Add(1)
		select {
		case d.resync <- struct{}{}:
		default:
		}
	}
}

// logWriter routes memberlist's log lines ("[LEVEL] memberlist: msg")
// into zap at debug level, keeping memberlist's level as a field. Some of
// memberlist's goroutines outlive its Shutdown (a gossip round in flight),
// so the writer is closed when the node stops and drops what comes later:
// the logger it was given may belong to something already gone.
type logWriter struct {
	mu     sync.RWMutex
	closed bool
	log    *zap.Logger
}

// close waits for lines being written and drops every later one.
func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return len(p), nil
	}
	msg := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.log.Debug(msg, zap.String("memberlistLevel", level))
	return len(p), nil
}
