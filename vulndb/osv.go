package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrInvalid marks input an import refuses: a file that is not a zip, a
// tar or JSON, or a record that breaks the OSV schema. The error names the
// file and the record.
var ErrInvalid = errors.New("invalid vulnerability database input")

// maxRecordBytes bounds one OSV record; real ones are a few KiB.
const maxRecordBytes = 16 << 20

// record is the part of an OSV record (https://ossf.github.io/osv-schema/)
// Berth reads.
type record struct {
	ID               string          `json:"id"`
	Modified         string          `json:"modified"`
	Withdrawn        string          `json:"withdrawn"`
	Aliases          []string        `json:"aliases"`
	Summary          string          `json:"summary"`
	Details          string          `json:"details"`
	Severity         []severity      `json:"severity"`
	Affected         []affected      `json:"affected"`
	References       []reference     `json:"references"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

type severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type affected struct {
	Package *struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Severity          []severity      `json:"severity"`
	Ranges            []osvRange      `json:"ranges"`
	Versions          []string        `json:"versions"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific"`
	DatabaseSpecific  json.RawMessage `json:"database_specific"`
}

// osvRange is one range of affected versions; it is also stored in the
// index (entry), so its JSON is kept short.
type osvRange struct {
	Type   string  `json:"type"`
	Events []event `json:"events"`
}

// event is one event of a range: exactly one field is set.
type event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Range types of the OSV schema. GIT ranges name commits, which an image's
// packages do not carry: they are ignored.
const (
	rangeSemver    = "SEMVER"
	rangeEcosystem = "ECOSYSTEM"
	rangeGit       = "GIT"
)

// decodeRecord reads and validates one OSV record.
func decodeRecord(r io.Reader) (*record, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxRecordBytes {
		return nil, fmt.Errorf("%w: larger than %d MiB", ErrInvalid, maxRecordBytes>>20)
	}
	var rec record
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, fmt.Errorf("%w: not an OSV JSON record: %v", ErrInvalid, err)
	}
	if err := rec.validate(); err != nil {
		return &rec, err
	}
	return &rec, nil
}

// validate checks the schema basics matching relies on.
func (r *record) validate() error {
	if r.ID == "" || len(r.ID) > 256 || strings.ContainsAny(r.ID, "\x00/") {
		return fmt.Errorf("%w: id %q is missing or not a valid OSV id", ErrInvalid, r.ID)
	}
	if _, err := time.Parse(time.RFC3339, r.Modified); err != nil {
		return fmt.Errorf("%w: modified %q is not an RFC 3339 time", ErrInvalid, r.Modified)
	}
	if r.Withdrawn != "" {
		if _, err := time.Parse(time.RFC3339, r.Withdrawn); err != nil {
			return fmt.Errorf("%w: withdrawn %q is not an RFC 3339 time", ErrInvalid, r.Withdrawn)
		}
	}
	for i, a := range r.Affected {
		if err := a.validate(); err != nil {
			return fmt.Errorf("affected[%d]: %w", i, err)
		}
	}
	return nil
}

func (a *affected) validate() error {
	if a.Package != nil && (a.Package.Ecosystem == "" || a.Package.Name == "" ||
		strings.ContainsRune(a.Package.Ecosystem+a.Package.Name, 0)) {
		return fmt.Errorf("%w: package needs an ecosystem and a name", ErrInvalid)
	}
	for i, rg := range a.Ranges {
		if err := rg.validate(); err != nil {
			return fmt.Errorf("ranges[%d]: %w", i, err)
		}
	}
	return nil
}

func (rg *osvRange) validate() error {
	switch rg.Type {
	case rangeSemver, rangeEcosystem, rangeGit:
	default:
		return fmt.Errorf("%w: type %q is not SEMVER, ECOSYSTEM or GIT", ErrInvalid, rg.Type)
	}
	introduced := false
	for i, e := range rg.Events {
		n := 0
		for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%w: events[%d] must have exactly one of introduced, fixed, last_affected, limit", ErrInvalid, i)
		}
		introduced = introduced || e.Introduced != ""
	}
	if !introduced {
		return fmt.Errorf("%w: a range needs an introduced event", ErrInvalid)
	}
	return nil
}

// modified is the record's modification time (validated).
func (r *record) modified() time.Time {
	t, _ := time.Parse(time.RFC3339, r.Modified)
	return t
}

// uri is a link of the record: its first ADVISORY reference, else its
// first WEB one.
func (r *record) uri() string {
	for _, typ := range []string{"ADVISORY", "WEB"} {
		for _, ref := range r.References {
			if ref.Type == typ && ref.URL != "" {
				return ref.URL
			}
		}
	}
	return ""
}

// summary is the record's summary, else the first line of its details.
func (r *record) summary() string {
	s := r.Summary
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(r.Details), "\n")
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
