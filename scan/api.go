package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"berth/errdefs"
	"berth/internal/oci"
	"berth/store"
)

// configKind is the store's operator-setting kind of a repository's
// scanning configuration (store/keys.go, pol/).
const configKind = "scanningConfiguration"

// RepoConfig is a repository's image scanning configuration (ECR's
// imageScanningConfiguration).
type RepoConfig struct {
	ScanOnPush bool `json:"scanOnPush"`
}

// ErrNotScanned is a manifest with no scan record.
var ErrNotScanned = errors.New("the image was never scanned: run start-image-scan, or turn on scan-on-push (put-image-scanning-configuration) or scanning.scanOnPull")

// ErrQueueFull is a start-image-scan the queue had no room for.
var ErrQueueFull = errors.New("the scan queue is full: try again when the running scans are done, or raise scanning.queueSize")

// PutConfiguration sets a repository's scanning configuration.
func (s *Scanner) PutConfiguration(ctx context.Context, name string, c RepoConfig) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.o.Store.PutPolicy(ctx, configKind, name, v)
}

// Configuration returns a repository's own scanning configuration: the
// zero one when none was put.
func (s *Scanner) Configuration(ctx context.Context, name string) (RepoConfig, error) {
	var c RepoConfig
	v, err := s.o.Store.GetPolicy(ctx, configKind, name)
	if notFound(err) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("scanning configuration of %s: %w", name, err)
	}
	return c, nil
}

// Pushed is the hook after a manifest was pushed to the local repository
// name: it queues a scan when the repository's configuration or the
// node's scanOnPush (and filters) asks for one. It never waits.
func (s *Scanner) Pushed(ctx context.Context, name, digest string) {
	if !s.o.Settings().PushScanned(name) {
		c, err := s.Configuration(ctx, name)
		if err != nil || !c.ScanOnPush {
			return
		}
	}
	s.Enqueue(store.LocalKey(name), digest, "push")
}

// Pulled is the hook after a pull stored a manifest of a cached
// repository (canonical is its name): an image of a repository that
// scanning.scanOnPull names is queued. An index is left alone: each
// platform is scanned when a pull stores it. It never waits.
func (s *Scanner) Pulled(repo store.RepoKey, canonical, digest, mediaType string) {
	if oci.IsIndex(mediaType) || !s.o.Settings().PullScanned(canonical) {
		return
	}
	s.Enqueue(repo, digest, "pull")
}

// StartScan queues a scan of a manifest of repo by hand
// (start-image-scan).
func (s *Scanner) StartScan(ctx context.Context, repo store.RepoKey, digest string) error {
	if _, err := s.o.Store.RepoManifest(ctx, repo, digest); err != nil {
		if notFound(err) {
			return errdefs.ManifestUnknown(digest)
		}
		return err
	}
	if !s.Enqueue(repo, digest, "manual") {
		return ErrQueueFull
	}
	return nil
}

// Findings returns the latest scan of a manifest of repo: ManifestUnknown
// when the repository does not hold it, ErrNotScanned without a record.
func (s *Scanner) Findings(ctx context.Context, repo store.RepoKey, digest string) (*Record, error) {
	if _, err := s.o.Store.RepoManifest(ctx, repo, digest); err != nil {
		if notFound(err) {
			return nil, errdefs.ManifestUnknown(digest)
		}
		return nil, err
	}
	r, err := s.record(ctx, digest)
	if notFound(err) {
		if s.isPending(repo, digest) {
			return &Record{Digest: digest, Status: StatusInProgress, Description: "The scan is queued."}, nil
		}
		return nil, ErrNotScanned
	}
	return r, err
}

func (s *Scanner) isPending(repo store.RepoKey, digest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[job{repo: repo, digest: digest}.key()]
}

// Summary is a scan's status and severity counts without its findings
// (describe-images' imageScanStatus and imageScanFindingsSummary).
type Summary struct {
	Status      string
	Description string
	CompletedAt time.Time
	DBUpdatedAt time.Time
	// Counts are the findings by severity; nil unless Status is COMPLETE.
	Counts map[string]int
}

// Summary returns the latest scan of a manifest a listing of repo found
// there (the repository is not checked again), false when it was never
// scanned and no scan is queued. Only the findings' severities are
// decoded, not the packages.
func (s *Scanner) Summary(ctx context.Context, repo store.RepoKey, digest string) (Summary, bool, error) {
	v, err := s.o.Store.GetScan(ctx, digest)
	if notFound(err) {
		if s.isPending(repo, digest) {
			return Summary{Status: StatusInProgress, Description: "The scan is queued."}, true, nil
		}
		return Summary{}, false, nil
	}
	if err != nil {
		return Summary{}, false, err
	}
	var r struct {
		Status      string    `json:"status"`
		Description string    `json:"description"`
		CompletedAt time.Time `json:"completedAt"`
		DBUpdatedAt time.Time `json:"dbUpdatedAt"`
		Findings    []struct {
			Severity string `json:"severity"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return Summary{}, false, fmt.Errorf("scan record of %s: %w", digest, err)
	}
	out := Summary{Status: r.Status, Description: r.Description, CompletedAt: r.CompletedAt, DBUpdatedAt: r.DBUpdatedAt}
	if r.Status == StatusComplete {
		out.Counts = map[string]int{}
		for _, f := range r.Findings {
			out.Counts[f.Severity]++
		}
	}
	return out, true, nil
}
