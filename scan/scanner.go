// Package scan scans stored images for known vulnerabilities: it reads an
// image's layers from the store within bounds (the image is hostile
// input), extracts its packages with osv-scalibr's extractors, matches them
// against the offline database (package vulndb), keeps the findings per
// manifest digest in the store, and attaches the image's SBOM as an OCI
// referrer. Scans run in a bounded background pool; the request path only
// enqueues.
package scan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"berth/config"
	"berth/store"
	"berth/vulndb"

	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// DB is what a scan asks of the vulnerability database (*vulndb.DB).
type DB interface {
	Match(ctx context.Context, p vulndb.Package) ([]vulndb.Vuln, error)
	Describe(ctx context.Context) (vulndb.Info, error)
	Subscribe() <-chan vulndb.Info
}

var _ DB = (*vulndb.DB)(nil)

// Options configure a Scanner.
type Options struct {
	Store *store.Store
	DB    DB
	// Settings returns the live scanning configuration (read at every
	// trigger and scan); Workers and QueueSize are read once, at New.
	Settings func() config.Scanning
	// Fill, when set, fetches what the store lacks of an image of a
	// cached repository before it is read, as a pull would (the
	// upstream's fills, shared with the clients pulling it): a scan on
	// pull starts when the manifest is stored, before its layers.
	Fill func(ctx context.Context, repo store.RepoKey, digest string) error
	// TempDir holds the scratch directories of running scans.
	TempDir    string
	Registerer prometheus.Registerer
	Logger     *zap.Logger
	Now        func() time.Time
	// OnRescan, when set, is told that the rescans of a new database
	// version were all queued (tests wait for it).
	OnRescan func(version uint64)
}

// job is one scan to run: a manifest of a repository.
type job struct {
	repo   store.RepoKey
	digest string
	reason string
}

func (j job) key() string { return j.repo.Encode() + "\x00" + j.digest }

// Scanner runs scans in the background.
type Scanner struct {
	o     Options
	ex    []filesystem.Extractor
	m     *metrics
	queue chan job

	mu      sync.Mutex
	pending map[string]bool // queued or running, by job key
	idle    chan struct{}   // closed while nothing is pending

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Scanner; Start runs its workers.
func New(o Options) (*Scanner, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	set := o.Settings()
	ex, err := newExtractors()
	if err != nil {
		return nil, err
	}
	s := &Scanner{o: o, ex: ex, queue: make(chan job, max(set.QueueSize, 1)),
		pending: map[string]bool{}, idle: make(chan struct{})}
	close(s.idle)
	s.m = newMetrics(o.Registerer, o.Store, o.Now, o.Logger)
	return s, nil
}

// Start loads the stored records (for the metrics), queues again the scans
// a restart interrupted, and runs the workers and the rescan of every
// stored image when a new database version is imported, until Close.
func (s *Scanner) Start(ctx context.Context) error {
	var resume []job
	err := s.o.Store.ListScans(ctx, func(digest string, v []byte) error {
		r, err := decodeRecord(v)
		if err != nil {
			return nil // a record this version cannot read is rescanned on demand
		}
		s.m.recorded(r)
		if r.Status == StatusInProgress {
			if k, err := store.ParseRepoKey(r.Repo); err == nil {
				resume = append(resume, job{repo: k, digest: digest, reason: "restart"})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load scan records: %w", err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() { s.m.loop.Run(ctx) })
	for range max(s.o.Settings().Workers, 1) {
		s.wg.Go(func() { s.work(ctx) })
	}
	updates := s.o.DB.Subscribe()
	s.wg.Go(func() { s.rescanOnUpdate(ctx, updates, resume) })
	return nil
}

// Close stops the workers; a scan running is cancelled and resumed at the
// next start.
func (s *Scanner) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// Enqueue queues a scan without waiting: it reports false when the queue
// is full (the trigger is dropped and counted) and true when the scan is
// queued or already pending.
func (s *Scanner) Enqueue(repo store.RepoKey, digest, reason string) bool {
	j := job{repo: repo, digest: digest, reason: reason}
	if !s.claim(j) {
		return true
	}
	select {
	case s.queue <- j:
		s.m.queued()
		return true
	default:
		s.release(j)
		s.m.dropped.WithLabelValues(reason).Inc()
		s.o.Logger.Warn("scan queue full: scan dropped (raise scanning.queueSize or scanning.workers)",
			zap.String("repo", repo.String()), zap.String("digest", digest), zap.String("reason", reason))
		return false
	}
}

// enqueueWait queues a scan, waiting for room (background rescans only).
func (s *Scanner) enqueueWait(ctx context.Context, j job) error {
	if !s.claim(j) {
		return nil
	}
	select {
	case s.queue <- j:
		s.m.queued()
		return nil
	case <-ctx.Done():
		s.release(j)
		return ctx.Err()
	}
}

func (s *Scanner) claim(j job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[j.key()] {
		return false
	}
	if len(s.pending) == 0 {
		s.idle = make(chan struct{})
	}
	s.pending[j.key()] = true
	return true
}

func (s *Scanner) release(j job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, j.key())
	if len(s.pending) == 0 {
		close(s.idle)
	}
}

// WaitIdle returns when no scan is queued or running, or ctx ends.
func (s *Scanner) WaitIdle(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Scanner) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.queue:
			s.m.dequeued()
			s.run(ctx, j)
			s.release(j)
		}
	}
}

// run scans one job and records its outcome; it never panics the node.
func (s *Scanner) run(ctx context.Context, j job) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Settings().Timeout)
	defer cancel()
	start := time.Now()
	err := s.scanImage(ctx, j)
	s.m.duration.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		s.m.scans.WithLabelValues(StatusComplete).Inc()
	case notFound(err):
		s.o.Logger.Info("image gone before its scan", zap.String("repo", j.repo.String()), zap.String("digest", j.digest))
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// the node is stopping: the IN_PROGRESS record resumes it
	default:
		s.m.scans.WithLabelValues(StatusFailed).Inc()
		s.o.Logger.Warn("image scan failed", zap.String("repo", j.repo.String()), zap.String("digest", j.digest),
			zap.String("reason", j.reason), zap.Error(err))
	}
}

// rescanOnUpdate queues the interrupted scans, then a rescan of every
// scanned image whenever the database publishes a new version.
func (s *Scanner) rescanOnUpdate(ctx context.Context, updates <-chan vulndb.Info, resume []job) {
	for _, j := range resume {
		if s.enqueueWait(ctx, j) != nil {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case info := <-updates:
			if err := s.rescanAll(ctx, info.Version); err != nil && ctx.Err() == nil {
				s.o.Logger.Error("rescan after a database import", zap.Error(err))
			}
			if s.o.OnRescan != nil {
				s.o.OnRescan(info.Version)
			}
		}
	}
}

// rescanAll queues every scanned manifest matched against an older
// database version (an index's platforms are rescanned with it).
func (s *Scanner) rescanAll(ctx context.Context, version uint64) error {
	var jobs []job
	err := s.o.Store.ListScans(ctx, func(digest string, v []byte) error {
		r, err := decodeRecord(v)
		if err != nil || r.DBVersion >= version || r.Status == StatusUnsupported {
			return nil
		}
		if k, err := store.ParseRepoKey(r.Repo); err == nil {
			jobs = append(jobs, job{repo: k, digest: digest, reason: "database"})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := s.enqueueWait(ctx, j); err != nil {
			return err
		}
	}
	return nil
}
