package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth/store"
	"berth/vulndb"
)

// Scan statuses, ECR's.
const (
	StatusInProgress  = "IN_PROGRESS"
	StatusComplete    = "COMPLETE"
	StatusFailed      = "FAILED"
	StatusUnsupported = "UNSUPPORTED_IMAGE"
)

// extractorVersion names the extraction a record's packages came from:
// records of another version are extracted again, not only matched again.
// 2: rpm versions of the Red Hat family carry their epoch.
const extractorVersion = 2

// Record is the latest scan of one manifest (store's scn/ record).
type Record struct {
	Digest string `json:"digest"`
	// Repo is the repository (a store.RepoKey's encoding) of the scan
	// that wrote the record: a restart or a new database scans it there.
	Repo string `json:"repo"`
	// Index is set for an image index: its findings are its platforms'.
	Index       bool      `json:"index,omitempty"`
	Status      string    `json:"status"`
	Description string    `json:"description"`
	StartedAt   time.Time `json:"startedAt"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// DBVersion and DBUpdatedAt are the vulnerability database's the
	// findings were matched against.
	DBVersion   uint64    `json:"dbVersion,omitempty"`
	DBUpdatedAt time.Time `json:"dbUpdatedAt,omitzero"`
	Extractor   int       `json:"extractor,omitempty"`
	// Packages are what the image holds; a new database rematches them
	// without reading the image again. An index's are its platforms'.
	Packages []Package `json:"packages,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
	// SBOM is the digest of the image's SPDX document (a blob), from
	// which each repository's referrer manifest is built.
	SBOM     string `json:"sbom,omitempty"`
	SBOMSize int64  `json:"sbomSize,omitempty"`
	// Platforms are an index's manifests that were scanned.
	Platforms []string `json:"platforms,omitempty"`
}

// Finding is one vulnerability of one package, in ECR's shape.
type Finding struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	URI         string      `json:"uri,omitempty"`
	Severity    string      `json:"severity"`
	Attributes  []Attribute `json:"attributes"`
}

// Attribute is a finding's key and value (package_name, package_version,
// fixed_version, ...).
type Attribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Attr returns the value of an attribute, "" if it has none.
func (f Finding) Attr(key string) string {
	for _, a := range f.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// Counts are the findings by severity.
func (r *Record) Counts() map[string]int {
	out := map[string]int{}
	for _, f := range r.Findings {
		out[f.Severity]++
	}
	return out
}

func decodeRecord(v []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("scan record: %w", err)
	}
	return &r, nil
}

// record returns the stored scan of digest, or ErrNotFound.
func (s *Scanner) record(ctx context.Context, digest string) (*Record, error) {
	v, err := s.o.Store.GetScan(ctx, digest)
	if err != nil {
		return nil, err
	}
	return decodeRecord(v)
}

func (s *Scanner) putRecord(ctx context.Context, r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// The record lists the image's packages: the store encrypts it as
	// it does the image's content.
	k, err := store.ParseRepoKey(r.Repo)
	local := err == nil && !k.Cached()
	if err := s.o.Store.PutScan(ctx, r.Digest, v, local); err != nil {
		return fmt.Errorf("store the scan of %s: %w", r.Digest, err)
	}
	s.m.recorded(r)
	return nil
}

// match looks every package up in the database: one finding per
// advisory and package, sorted by severity, then name.
func (s *Scanner) match(ctx context.Context, pkgs []Package) ([]Finding, error) {
	var out []Finding
	seen := map[string]bool{}
	for _, p := range pkgs {
		vulns, err := s.o.DB.Match(ctx, vulndb.Package{Ecosystem: p.Ecosystem, Name: p.Name, Version: p.Version})
		if errors.Is(err, vulndb.ErrNoDatabase) {
			return nil, err
		}
		if err != nil {
			// One package whose version the ecosystem's rules cannot read
			// does not fail the scan.
			s.o.Logger.Debug("package not matched: " + err.Error())
			continue
		}
		for _, v := range vulns {
			key := v.ID + "\x00" + p.Ecosystem + "\x00" + p.Name + "\x00" + p.Version
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, finding(p, v))
		}
	}
	return sortFindings(out), nil
}

// sortFindings orders findings by severity, then advisory, then package.
func sortFindings(out []Finding) []Finding {
	slices.SortFunc(out, func(a, b Finding) int {
		if c := severityRank(a.Severity) - severityRank(b.Severity); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Attr("package_name"), b.Attr("package_name"))
	})
	return out
}

func finding(p Package, v vulndb.Vuln) Finding {
	attrs := []Attribute{
		{"package_name", p.Name}, {"package_version", p.Version}, {"package_ecosystem", p.Ecosystem},
	}
	if v.FixedVersion != "" {
		attrs = append(attrs, Attribute{"fixed_version", v.FixedVersion})
	}
	if p.Path != "" {
		attrs = append(attrs, Attribute{"package_path", p.Path})
	}
	if len(v.Aliases) > 0 {
		attrs = append(attrs, Attribute{"aliases", strings.Join(v.Aliases, ",")})
	}
	return Finding{Name: v.ID, Description: v.Summary, URI: v.URI, Severity: v.Severity, Attributes: attrs}
}

// Severities are ECR's levels, most severe first.
var Severities = []string{vulndb.SeverityCritical, vulndb.SeverityHigh, vulndb.SeverityMedium,
	vulndb.SeverityLow, vulndb.SeverityInformational, vulndb.SeverityUndefined}

func severityRank(s string) int {
	if i := slices.Index(Severities, s); i >= 0 {
		return i
	}
	return len(Severities)
}

// notFound reports whether err is the store's not-found.
func notFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
