package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"berth/internal/wildcard"
)

// Scanning configures image scanning against an offline vulnerability
// database (issue #16).
type Scanning struct {
	// VulnDB is an OSV vulnerability database the node imports: an OSV
	// zip dump (all.zip of an ecosystem), an OSV JSON file, or a
	// directory of them (read recursively). It is imported at start when
	// it is newer than the database the store holds, and on a reload
	// (SIGHUP) when it changed. "" imports nothing (berth import-vulndb
	// still can).
	VulnDB string `yaml:"vulnDB"`
	// ScanOnPush scans every manifest pushed to a local repository that
	// Filters select (a repository's own put-image-scanning-configuration
	// turns it on for that repository too).
	ScanOnPush bool `yaml:"scanOnPush"`
	// ScanOnPull are canonical repository names or "*" patterns of cached
	// repositories whose images are scanned when a pull stores them.
	ScanOnPull []string `yaml:"scanOnPull"`
	// Filters are repository names or "*" patterns that ScanOnPush applies
	// to (ECR's repositoryFilters); empty selects every local repository.
	Filters []string `yaml:"filters"`
	// Workers is how many scans run at once (default 1).
	Workers int `yaml:"workers"`
	// QueueSize bounds the scans waiting; a trigger beyond it is dropped
	// and counted (berth_image_scan_dropped_total). Default 256.
	QueueSize int `yaml:"queueSize"`
	// Timeout bounds one scan (default 10m).
	Timeout time.Duration `yaml:"timeout"`
	// MaxImageBytes bounds the uncompressed bytes of an image's layers
	// one scan reads (default 16 GiB): a tar bomb fails the scan there.
	MaxImageBytes int64 `yaml:"maxImageBytes"`
	// MaxFileBytes is the largest file handed to an extractor (default
	// 256 MiB); larger ones are skipped and counted in the description.
	MaxFileBytes int64 `yaml:"maxFileBytes"`
	// MaxKeptBytes bounds the scratch space one scan keeps on disk for the
	// extractors (default 1 GiB).
	MaxKeptBytes int64 `yaml:"maxKeptBytes"`
}

func defaultScanning() Scanning {
	return Scanning{Workers: 1, QueueSize: 256, Timeout: 10 * time.Minute,
		MaxImageBytes: 16 << 30, MaxFileBytes: 256 << 20, MaxKeptBytes: 1 << 30}
}

// PushScanned reports whether the node-wide setting scans a push to the
// local repository name.
func (s Scanning) PushScanned(name string) bool {
	if !s.ScanOnPush {
		return false
	}
	return len(s.Filters) == 0 || matchAny(s.Filters, name)
}

// PullScanned reports whether a pull that stores an image of the cached
// repository canonical is scanned.
func (s Scanning) PullScanned(canonical string) bool { return matchAny(s.ScanOnPull, canonical) }

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if wildcard.Match(p, name) {
			return true
		}
	}
	return false
}

func (s Scanning) validate() []error {
	var errs []error
	if s.VulnDB != "" && strings.TrimSpace(s.VulnDB) != s.VulnDB {
		errs = append(errs, errors.New("scanning.vulnDB: the path has leading or trailing spaces"))
	}
	pos := []struct {
		key string
		v   int64
	}{{"workers", int64(s.Workers)}, {"queueSize", int64(s.QueueSize)}, {"timeout", int64(s.Timeout)},
		{"maxImageBytes", s.MaxImageBytes}, {"maxFileBytes", s.MaxFileBytes}, {"maxKeptBytes", s.MaxKeptBytes}}
	for _, p := range pos {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("scanning.%s: must be positive", p.key))
		}
	}
	if s.Workers > 64 {
		errs = append(errs, fmt.Errorf("scanning.workers: %d is more than 64; scans share the node's CPU and disk with its clients", s.Workers))
	}
	for i, p := range append(append([]string(nil), s.ScanOnPull...), s.Filters...) {
		if p == "" {
			errs = append(errs, fmt.Errorf("scanning: pattern %d is empty; give a repository name or a * pattern", i))
		}
	}
	return errs
}
