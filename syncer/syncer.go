// Package syncer fills the cache ahead of clients: each sync rule of the
// configuration resolves the tags it selects at its upstream and pulls
// them through the node's backend, exactly as a client pull would (the
// same verified, shared fills, the upstream's quota governor, the same
// records), on its interval or when asked (sync-now).
package syncer

import (
	"context"
	"sync"
	"time"

	"berth/config"
	"berth/errdefs"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Backend is what a sync run pulls through: the registry backend of the
// node (its mirror), as a client's pull reaches it.
type Backend interface {
	registry.ManifestHandler
	registry.BlobHandler
	registry.TagLister
}

// referrersLister is the backend's optional referrers ability.
type referrersLister interface {
	Referrers(ctx context.Context, repo registry.Repo, d registry.Digest) ([]registry.Descriptor, error)
}

// Options configure a Syncer.
type Options struct {
	Backend Backend
	// Routes is the routing in force (the node's live router).
	Routes func() *upstream.Router
	// Rules is the sync rules in force (the node's live config).
	Rules func() []config.SyncRule
	// Store is read to tell which cached images pinned rules keep.
	Store *store.Store
	// Registerer, when set, takes the per-rule metrics.
	Registerer prometheus.Registerer
	Logger     *zap.Logger
	// Now is the clock of the schedule (tests).
	Now func() time.Time
}

// Run is the outcome of one run of a rule.
type Run struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Images is how many tags were synced; Bytes how many blob and
	// manifest bytes came from the upstream (not already held).
	Images int      `json:"images"`
	Bytes  int64    `json:"bytes"`
	Errors []string `json:"errors,omitempty"`
}

// Status is a rule's state: its last run, whether one runs now, and when
// the next is due.
type Status struct {
	Rule     string    `json:"rule"`
	Upstream string    `json:"upstream"`
	Running  bool      `json:"running"`
	LastRun  *Run      `json:"lastRun,omitempty"`
	NextRun  time.Time `json:"nextRun,omitzero"`
}

// Syncer runs the sync rules.
type Syncer struct {
	o       Options
	log     *zap.Logger
	metrics *syncMetrics

	mu    sync.Mutex
	state map[string]*ruleState // by rule name

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type ruleState struct {
	last *Run
	next time.Time
	// done is closed when the run in progress ends; nil when none runs.
	done chan struct{}
}

// New returns a Syncer; Start runs its schedule, Close stops it.
func New(o Options) *Syncer {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Syncer{o: o, log: o.Logger, metrics: newMetrics(o.Registerer), state: map[string]*ruleState{},
		base: ctx, cancel: cancel}
}

// Close stops the schedule and the runs in progress, and waits for them.
func (s *Syncer) Close() {
	s.cancel()
	s.wg.Wait()
}

// rule returns the rule in force named name.
func (s *Syncer) rule(name string) (config.SyncRule, bool) {
	for _, r := range s.o.Rules() {
		if r.Name == name {
			return r.WithDefaults(), true
		}
	}
	return config.SyncRule{}, false
}

// Describe is every rule's status, in configuration order.
func (s *Syncer) Describe() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, r := range s.o.Rules() {
		st := Status{Rule: r.Name, Upstream: r.Upstream}
		if rs := s.state[r.Name]; rs != nil {
			st.Running, st.NextRun = rs.done != nil, rs.next
			if rs.last != nil {
				last := *rs.last
				st.LastRun = &last
			}
		}
		out = append(out, st)
	}
	return out
}

// SyncNow starts a run of the named rule, or of every rule for "", unless
// one runs already; with wait it returns when they have ended (or ctx
// ends), else at once. The runs are detached from ctx.
func (s *Syncer) SyncNow(ctx context.Context, name string, wait bool) ([]Status, error) {
	var names []string
	for _, r := range s.o.Rules() {
		if name == "" || r.Name == name {
			names = append(names, r.Name)
		}
	}
	if name != "" && len(names) == 0 {
		return nil, errdefs.New(errdefs.ErrInvalidParameter, "there is no sync rule %q; the config's sync key lists them (berth describe-sync shows them)", name)
	}
	var dones []chan struct{}
	for _, n := range names {
		dones = append(dones, s.start(n))
	}
	if wait {
		for _, d := range dones {
			select {
			case <-d:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	var out []Status
	for _, st := range s.Describe() {
		if name == "" || st.Rule == name {
			out = append(out, st)
		}
	}
	return out, nil
}

// start runs the named rule in the background unless it runs already, and
// returns the channel closed when the run in progress ends.
func (s *Syncer) start(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.stateLocked(name)
	if rs.done != nil {
		return rs.done
	}
	done := make(chan struct{})
	rs.done = done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		run := s.runRule(s.base, name)
		s.mu.Lock()
		rs.last, rs.done = &run, nil
		if r, ok := s.rule(name); ok {
			rs.next = run.Started.Add(r.Interval)
		}
		s.mu.Unlock()
		close(done)
	}()
	return done
}

func (s *Syncer) stateLocked(name string) *ruleState {
	rs := s.state[name]
	if rs == nil {
		rs = &ruleState{}
		s.state[name] = rs
	}
	return rs
}

// RunDue starts the runs that are due by the clock: a rule's first run at
// once, then one every interval after the previous run started. It
// returns the channels closed when the runs it started end, and when the
// next run is due.
func (s *Syncer) RunDue() (started []chan struct{}, next time.Time) {
	now := s.o.Now()
	var due []string
	s.mu.Lock()
	for _, r := range s.o.Rules() {
		r = r.WithDefaults()
		rs := s.stateLocked(r.Name)
		if rs.done != nil {
			continue
		}
		if rs.last != nil && rs.next.After(rs.last.Started.Add(r.Interval)) {
			rs.next = rs.last.Started.Add(r.Interval) // the interval was shortened by a reload
		}
		if rs.next.IsZero() || !now.Before(rs.next) {
			due = append(due, r.Name)
			rs.next = now.Add(r.Interval)
		}
		if next.IsZero() || rs.next.Before(next) {
			next = rs.next
		}
	}
	s.mu.Unlock()
	for _, name := range due {
		started = append(started, s.start(name))
	}
	return started, next
}

// Start runs the schedule until Close: due runs are started, and the
// schedule is looked at again when the next is due, at least every minute
// (a reload may add rules or change intervals).
func (s *Syncer) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			_, next := s.RunDue()
			wait := time.Minute
			if d := next.Sub(s.o.Now()); !next.IsZero() && d < wait {
				wait = max(d, time.Second)
			}
			t := time.NewTimer(wait)
			select {
			case <-s.base.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}
