// Package replicate copies what is pushed to local repositories to other
// registries (the config's replication rules): each push or tag move is
// queued in the store, so a restart resumes it, and copied to every
// destination with retries that back off. Copies are idempotent: blobs the
// destination has are skipped or mounted.
package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"berth/config"
	"berth/errdefs"
	"berth/internal/wildcard"
	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Store kinds of the queue and of the outcomes.
const (
	kindQueue  = "replicationQueue"
	kindStatus = "replicationStatus"
)

// Statuses, as ECR names them.
const (
	InProgress = "IN_PROGRESS"
	Complete   = "COMPLETE"
	Failed     = "FAILED"
)

// item is one copy to do: an image (by tag, or by digest) to a destination.
type item struct {
	Repo     string    `json:"repo"`
	Tag      string    `json:"tag,omitempty"`
	Digest   string    `json:"digest"`
	Dest     string    `json:"dest"` // destination URL
	Prefix   string    `json:"prefix,omitempty"`
	Queued   time.Time `json:"queued"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"`
	Error    string    `json:"error,omitempty"`
}

func (it item) key() string {
	ref := it.Tag
	if ref == "" {
		ref = it.Digest
	}
	return it.Dest + " " + it.Prefix + " " + it.Repo + " " + ref
}

// Status is an image's replication to one destination.
type Status struct {
	Destination   string    `json:"destination"`
	Status        string    `json:"status"`
	FailureReason string    `json:"failureCode,omitempty"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Options configure a Replicator.
type Options struct {
	Store *store.Store
	// Rules is the replication rules in force.
	Rules      func() []config.Replication
	Registerer prometheus.Registerer
	Logger     *zap.Logger
	Now        func() time.Time
	// MaxBackoff bounds the wait between tries (default 5m).
	MaxBackoff time.Duration
}

// Replicator runs the queue.
type Replicator struct {
	o    Options
	log  *zap.Logger
	kick chan struct{}
	mu   sync.Mutex // one pass over the queue at a time
	// list reads a kind's entries whose names begin with a prefix; tests
	// wrap it to count the reads.
	list func(ctx context.Context, kind, prefix string) ([]store.PolicyEntry, error)
	// depth and oldest (Unix nanoseconds, 0 for none) are the queue's
	// length and its oldest copy's queue time as the last pass found
	// them, kept up by Enqueue and the pass's copies: what the gauges
	// serve, so a scrape never reads the queue.
	depth, oldest atomic.Int64

	failures *prometheus.CounterVec
	copies   *prometheus.CounterVec
}

// New returns a Replicator; Run works the queue.
func New(o Options) *Replicator {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	r := &Replicator{o: o, log: o.Logger, kick: make(chan struct{}, 1), list: o.Store.ListPoliciesPrefix,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_replication_failures_total",
			Help: "Replication copies that failed (and will be tried again), by destination."}, []string{"destination"}),
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_replication_copies_total",
			Help: "Images copied to replication destinations, by destination."}, []string{"destination"})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(r.failures, r.copies, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "berth_replication_lag_seconds", Help: "Age of the oldest copy still queued (0: none).",
		}, r.lag), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "berth_replication_queue", Help: "Copies queued for replication destinations.",
		}, func() float64 { return float64(max(r.depth.Load(), 0)) }))
	}
	return r
}

// Enqueue queues the copy of an image pushed to a local repository (by
// its tags, or by digest when it has none) to every destination of the
// rules that match the repository.
func (r *Replicator) Enqueue(ctx context.Context, repo, digest string, tags []string) error {
	now := r.o.Now().UTC()
	refs := tags
	if len(refs) == 0 {
		refs = []string{""}
	}
	queued := false
	for _, rule := range r.o.Rules() {
		if !matches(rule.Repositories, repo) {
			continue
		}
		for _, d := range rule.Destinations {
			for _, tag := range refs {
				it := item{Repo: repo, Tag: tag, Digest: digest, Dest: d.URL, Prefix: d.Prefix, Queued: now, Next: now}
				_, gerr := r.o.Store.GetPolicy(ctx, kindQueue, it.key())
				if err := r.put(ctx, it); err != nil {
					return err
				}
				if errors.Is(gerr, store.ErrNotFound) { // a new copy, not one requeued
					r.depth.Add(1)
					r.oldest.CompareAndSwap(0, now.UnixNano())
				}
				r.setStatus(ctx, it, InProgress, "")
				queued = true
			}
		}
	}
	if queued {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func matches(patterns []string, repo string) bool {
	for _, p := range patterns {
		if wildcard.Match(p, repo) {
			return true
		}
	}
	return false
}

func (r *Replicator) put(ctx context.Context, it item) error {
	b, _ := json.Marshal(it)
	return r.o.Store.PutPolicy(ctx, kindQueue, it.key(), b)
}

func (r *Replicator) queue(ctx context.Context) ([]item, error) {
	entries, err := r.list(ctx, kindQueue, "")
	if err != nil {
		return nil, err
	}
	out := make([]item, 0, len(entries))
	for _, e := range entries {
		var it item
		if json.Unmarshal(e.Value, &it) == nil {
			out = append(out, it)
		}
	}
	return out, nil
}

// lag is the age of the oldest queued copy (0: none), from the figures
// the passes keep.
func (r *Replicator) lag() float64 {
	oldest := r.oldest.Load()
	if oldest == 0 {
		return 0
	}
	return max(r.o.Now().Sub(time.Unix(0, oldest)).Seconds(), 0)
}

// publish sets the gauges' figures to a queue just read.
func (r *Replicator) publish(q []item) {
	var oldest int64
	for _, it := range q {
		if t := it.Queued.UnixNano(); oldest == 0 || t < oldest {
			oldest = t
		}
	}
	r.depth.Store(int64(len(q)))
	r.oldest.Store(oldest)
}

// RunOnce tries every copy that is due, and returns how many are left.
func (r *Replicator) RunOnce(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, err := r.queue(ctx)
	if err != nil {
		return 0, err
	}
	r.publish(q)
	// At the end, the figures are those of the copies still queued: the
	// ones kept, and those the pass did not reach.
	var kept []item
	i := 0
	defer func() { r.publish(append(kept, q[i:]...)) }()
	for ; i < len(q); i++ {
		it := q[i]
		if ctx.Err() != nil {
			return len(kept), ctx.Err()
		}
		if r.o.Now().Before(it.Next) {
			kept = append(kept, it)
			continue
		}
		if err := r.copy(ctx, it); err != nil {
			kept = append(kept, it)
			r.retry(ctx, it, err)
			continue
		}
		if err := r.o.Store.DeletePolicy(ctx, kindQueue, it.key()); err != nil && !errors.Is(err, store.ErrNotFound) {
			return len(kept), err
		}
		r.depth.Add(-1)
		r.setStatus(ctx, it, Complete, "")
		r.copies.WithLabelValues(it.Dest).Inc()
		r.log.Info("replicated", zap.String("repo", it.Repo), zap.String("tag", it.Tag), zap.String("digest", it.Digest), zap.String("destination", it.Dest))
	}
	return len(kept), nil
}

// retry records a failed copy and when to try it again.
func (r *Replicator) retry(ctx context.Context, it item, err error) {
	r.failures.WithLabelValues(it.Dest).Inc()
	it.Attempts++
	wait := min(time.Second<<min(it.Attempts, 20), r.o.MaxBackoff)
	it.Next, it.Error = r.o.Now().Add(wait), err.Error()
	r.log.Warn("replication failed; will try again", zap.String("repo", it.Repo), zap.String("destination", it.Dest),
		zap.Int("attempts", it.Attempts), zap.Duration("wait", wait), zap.Error(err))
	if perr := r.put(ctx, it); perr != nil {
		r.log.Error("replication queue", zap.Error(perr))
	}
	r.setStatus(ctx, it, Failed, err.Error())
}

func (r *Replicator) setStatus(ctx context.Context, it item, status, reason string) {
	b, _ := json.Marshal(Status{Destination: it.Dest, Status: status, FailureReason: reason, UpdatedAt: r.o.Now().UTC()})
	name := it.Repo + "@" + it.Digest + " " + it.Dest + " " + it.Prefix
	if err := r.o.Store.PutPolicy(ctx, kindStatus, name, b); err != nil {
		r.log.Warn("replication status", zap.Error(err))
	}
}

// Statuses is the replication of an image of repo to each destination.
func (r *Replicator) Statuses(ctx context.Context, repo, digest string) ([]Status, error) {
	// Only this image's entries are read, however many images have one.
	entries, err := r.list(ctx, kindStatus, repo+"@"+digest+" ")
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, e := range entries {
		var s Status
		if json.Unmarshal(e.Value, &s) == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// Run works the queue until ctx ends: at once after an Enqueue, and every
// few seconds for the retries that come due.
func (r *Replicator) Run(ctx context.Context) {
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("replication queue", zap.Error(err))
		}
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// destination finds the configured destination of it (for credentials).
func (r *Replicator) destination(it item) (config.Destination, error) {
	for _, rule := range r.o.Rules() {
		for _, d := range rule.Destinations {
			if d.URL == it.Dest && d.Prefix == it.Prefix {
				return d, nil
			}
		}
	}
	return config.Destination{}, fmt.Errorf("destination %s is no longer configured", it.Dest)
}

// ImageStatus is Statuses for an image named by digest, or by tag of a
// local repository when digest is "".
func (r *Replicator) ImageStatus(ctx context.Context, repo, digest, tag string) (string, []Status, error) {
	if digest == "" {
		t, err := r.o.Store.GetTag(ctx, "", repo, tag)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil, errdefs.New(errdefs.ErrManifestUnknown, "%s:%s is not a pushed image", repo, tag)
		} else if err != nil {
			return "", nil, err
		}
		digest = t.Digest
	}
	st, err := r.Statuses(ctx, repo, digest)
	return digest, st, err
}
