package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

const (
	eventQueue        = 1024 // memberlist callbacks -> event loop
	reconcileInterval = 10 * time.Second
	joinBackoffMin    = 200 * time.Millisecond
	joinBackoffMax    = 10 * time.Second
	updateTimeout     = time.Second     // stats loop: wait for the metadata broadcast at most this long
	shutdownBudget    = 5 * time.Second // leave budget when Shutdown's ctx has no deadline
)

// Cluster is this node's membership in a Berth cluster. Create it with
// Start and release it with Shutdown. All methods are safe for concurrent
// use.
type Cluster struct {
	log        *zap.Logger
	set        settings
	opts       options
	ml         *memberlist.Memberlist
	mlLog      *logWriter // memberlist's log lines; closed at shutdown
	del        *delegate
	view       *view
	gossipAddr string // advertised host:port

	metaMu sync.Mutex
	meta   nodeMeta // local metadata, mirrored encoded in del

	stopLoops  chan struct{} // join and stats loops
	stopEvents chan struct{} // event loop, after memberlist shut down
	wg         sync.WaitGroup
	shutOnce   sync.Once
	shutErr    error

	transport *http.Transport
	client    *http.Client
}

// Start creates the memberlist node, binds GossipAddr and begins joining
// cfg.Join in the background. ctx bounds name resolution in Start and the
// background (re)join loop: cancelling it stops joining, not the node.
// A nil log discards logs.
func Start(ctx context.Context, cfg Config, log *zap.Logger, opts ...Option) (*Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s, err := validate(ctx, cfg)
	if err != nil {
		return nil, err
	}
	o := options{statsInterval: 10 * time.Second, rejoin: 30 * time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{
		log:        log.With(zap.String("node", s.name)),
		set:        s,
		opts:       o,
		del:        newDelegate(eventQueue),
		view:       newView(s.name),
		stopLoops:  make(chan struct{}),
		stopEvents: make(chan struct{}),
	}
	c.transport, c.client = newPeerClient(c)

	c.meta = nodeMeta{PeerAddr: c.peerAddrFor(s.bindHost), Version: o.version}
	if o.stats != nil {
		st := o.stats()
		c.meta.StoredBytes, c.meta.Blobs = st.StoredBytes, st.Blobs
	}
	if err := checkMetaSize(c.meta.PeerAddr, o.version); err != nil {
		return nil, err
	}
	c.del.setMeta(c.meta.encode())

	ml, err := memberlist.Create(c.memberlistConfig())
	if err != nil {
		return nil, fmt.Errorf("start cluster: create memberlist on %s:%d: %w", s.bindHost, s.bindPort, err)
	}
	c.ml = ml
	// Nothing else runs yet, so reading LocalNode's fields is race-free.
	local := ml.LocalNode()
	c.gossipAddr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	if peer := c.peerAddrFor(local.Addr.String()); peer != c.meta.PeerAddr {
		if err := checkMetaSize(peer, o.version); err != nil {
			_ = ml.Shutdown()
			return nil, err
		}
		c.setMeta(func(m *nodeMeta) { m.PeerAddr = peer })
		_ = ml.UpdateNode(updateTimeout) // no peers yet: returns at once
	}
	self := c.currentMeta()
	c.view.setSelf(c.gossipAddr, self, StateAlive, time.Now())

	c.wg.Add(1)
	go c.eventLoop()
	if len(s.join) > 0 {
		c.wg.Add(1)
		go c.joinLoop(ctx)
	}
	if o.stats != nil {
		c.wg.Add(1)
		go c.statsLoop()
	}
	c.log.Info("cluster node started", zap.String("gossipAddr", c.gossipAddr),
		zap.String("peerAddr", self.PeerAddr), zap.Strings("join", s.join))
	return c, nil
}

func (c *Cluster) memberlistConfig() *memberlist.Config {
	s := c.set
	mc := memberlist.DefaultLANConfig()
	mc.Name = s.name
	mc.BindAddr, mc.BindPort = s.bindHost, s.bindPort
	if s.advHost != "" {
		mc.AdvertiseAddr, mc.AdvertisePort = s.advHost, s.advPort
	}
	mc.SecretKey = s.gossipKey // AES-256-GCM; incoming and outgoing verified
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = c.del
	mc.Events = c.del
	mc.LogOutput = nil
	c.mlLog = &logWriter{log: c.log.Named("memberlist")}
	mc.Logger = log.New(c.mlLog, "", 0)
	if s.probe > 0 {
		mc.ProbeInterval = s.probe
		mc.ProbeTimeout = min(mc.ProbeTimeout, s.probe/2)
	}
	if s.gossip > 0 {
		mc.GossipInterval = s.gossip
	}
	if c.opts.tune != nil {
		c.opts.tune(mc)
	}
	return mc
}

// peerAddrFor is the published peer address, using ip when PeerAddr has
// no usable host.
func (c *Cluster) peerAddrFor(ip string) string {
	host := c.set.peerHost
	if host == "" {
		host = ip
		if c.set.advHost != "" {
			host = c.set.advHost
		}
	}
	return net.JoinHostPort(host, c.set.peerPort)
}

func (c *Cluster) setMeta(fn func(*nodeMeta)) (changed bool) {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	old := c.meta
	fn(&c.meta)
	if c.meta == old {
		return false
	}
	c.del.setMeta(c.meta.encode())
	return true
}

func (c *Cluster) currentMeta() nodeMeta {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	return c.meta
}

// Self returns this node as published.
func (c *Cluster) Self() Member {
	m := c.currentMeta()
	return Member{
		Name: c.set.name, GossipAddr: c.gossipAddr, PeerAddr: m.PeerAddr, Version: m.Version,
		State: c.view.selfState(), Stats: NodeStats{StoredBytes: m.StoredBytes, Blobs: m.Blobs}, Self: true,
	}
}

// Members returns every known member, sorted by name: alive ones and, for
// ten minutes after they went, dead and left ones.
func (c *Cluster) Members() []Member { return c.view.members() }

// Owners returns the alive members that own key, best first: the top
// Replicas by rendezvous hashing, fewer if fewer are alive. Every node
// with the same membership computes the same list.
func (c *Cluster) Owners(key string) []Member { return c.view.owners(key, c.set.replicas) }

// eventLoop applies memberlist's node events to the view.
func (c *Cluster) eventLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(reconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stopEvents:
			return
		case ev := <-c.del.events:
			c.apply(ev)
		case <-c.del.resync:
			c.log.Warn("membership events were dropped; resynchronizing",
				zap.Uint64("dropped", c.del.dropped.Load()))
			c.reconcile(true)
		case <-tick.C:
			c.reconcile(false)
		}
	}
}

func (c *Cluster) apply(ev nodeEvent) {
	if out, ok := c.view.apply(ev, time.Now()); ok {
		c.logChange(out)
	}
}

// reconcile drains queued events first, so that the snapshot taken next is
// never older than an event applied after it.
func (c *Cluster) reconcile(addMissing bool) {
	for drained := false; !drained; {
		select {
		case ev := <-c.del.events:
			c.apply(ev)
		default:
			drained = true
		}
	}
	live := map[string]bool{}
	for _, n := range c.ml.Members() {
		live[n.Name] = true // Name is never written after creation; other fields are
	}
	for _, ev := range c.view.reconcile(live, addMissing, time.Now()) {
		c.logChange(ev)
	}
}

// logChange logs ev and tells WithOwnersChanged's hook of a join or leave.
func (c *Cluster) logChange(ev memberChange) {
	c.log.Debug("membership change", zap.Stringer("event", ev.Type), zap.String("member", ev.Member.Name),
		zap.String("state", ev.Member.State), zap.String("peerAddr", ev.Member.PeerAddr))
	if ev.Type != EventUpdate && c.opts.ownersChanged != nil {
		c.opts.ownersChanged()
	}
}

// joinLoop joins the seeds that are not alive members: with exponential
// backoff and jitter until the first success, then every rejoin interval
// (which brings the node back after it was isolated, and merges
// partitions). It stops when ctx ends or at Shutdown.
func (c *Cluster) joinLoop(ctx context.Context) {
	defer c.wg.Done()
	backoff, everJoined := joinBackoffMin, false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.stopLoops:
			return
		case <-timer.C:
		}
		wait := c.opts.rejoin
		if seeds := c.pendingSeeds(); len(seeds) > 0 {
			n, err := c.ml.Join(seeds)
			switch {
			case n > 0:
				if !everJoined {
					c.log.Info("joined cluster", zap.Int("contacted", n))
				}
				everJoined, backoff = true, joinBackoffMin
			case !everJoined:
				wait = backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
				backoff = min(2*backoff, joinBackoffMax)
				c.log.Warn("joining cluster failed; retrying", zap.Strings("seeds", seeds),
					zap.Duration("retryIn", wait), zap.Error(err))
			default:
				c.log.Debug("rejoining seeds failed", zap.Strings("seeds", seeds), zap.Error(err))
			}
		}
		timer.Reset(wait)
	}
}

// pendingSeeds returns the seeds that are neither this node nor the
// gossip address of an alive member.
func (c *Cluster) pendingSeeds() []string {
	_, alive := c.view.alive()
	var out []string
	for _, s := range c.set.join {
		if s == c.gossipAddr || alive[s] {
			continue
		}
		out = append(out, s)
	}
	return out
}

// statsLoop republishes the stats when they change.
func (c *Cluster) statsLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(c.opts.statsInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stopLoops:
			return
		case <-tick.C:
		}
		st := c.opts.stats()
		if !c.setMeta(func(m *nodeMeta) { m.StoredBytes, m.Blobs = st.StoredBytes, st.Blobs }) {
			continue
		}
		// The broadcast goes out whether or not we wait for it.
		if err := c.ml.UpdateNode(updateTimeout); err != nil {
			c.log.Debug("publishing stats", zap.Error(err))
		}
	}
}

// Shutdown leaves the cluster gracefully (peers see this node "left" at
// once and stop routing to it), then stops memberlist and waits for the
// background goroutines. Leaving takes at most half of ctx's remaining
// time (5 s without a deadline); a leave that times out is logged, and the
// node is shut down anyway (peers then detect it as dead). The error is
// non-nil only if memberlist fails to stop or ctx ends before the
// goroutines did. Safe to call more than once.
func (c *Cluster) Shutdown(ctx context.Context) error { return c.shutdown(ctx, true) }

// shutdown with graceful false stops without leaving, like a crash (tests).
func (c *Cluster) shutdown(ctx context.Context, graceful bool) error {
	c.shutOnce.Do(func() {
		close(c.stopLoops)
		state := StateDead
		if graceful {
			c.leave(ctx)
			state = StateLeft
		}
		if err := c.ml.Shutdown(); err != nil {
			c.shutErr = fmt.Errorf("cluster shutdown: %w", err)
		}
		c.mlLog.close()
		close(c.stopEvents)
		c.view.setSelf(c.gossipAddr, c.currentMeta(), state, time.Now())
		c.transport.CloseIdleConnections()
		c.log.Info("cluster node stopped", zap.Bool("graceful", graceful))
	})
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return c.shutErr
	case <-ctx.Done():
		return errors.Join(c.shutErr, fmt.Errorf("cluster shutdown: waiting for goroutines: %w", ctx.Err()))
	}
}

// leave first publishes Leaving in the metadata (so peers record "left",
// not "dead", and stop choosing this node as an owner), then broadcasts
// memberlist's leave.
func (c *Cluster) leave(ctx context.Context) {
	budget := shutdownBudget
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl) / 2
	}
	budget = max(budget, 10*time.Millisecond)
	if n, _ := c.view.alive(); n <= 1 {
		budget = 10 * time.Millisecond // nobody to tell
	}
	c.setMeta(func(m *nodeMeta) { m.Leaving = true })
	if err := c.ml.UpdateNode(budget / 2); err != nil {
		c.log.Debug("announcing leave", zap.Error(err))
	}
	if err := c.ml.Leave(budget / 2); err != nil {
		c.log.Warn("leaving cluster gracefully failed; peers will detect the node as dead", zap.Error(err))
	}
}
