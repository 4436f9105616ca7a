package vulndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// entry is what the index keeps of a record for one package: the fields a
// finding shows, and the package's affected entries.
type entry struct {
	ID       string      `json:"id"`
	Aliases  []string    `json:"aliases,omitempty"`
	Summary  string      `json:"summary,omitempty"`
	URI      string      `json:"uri,omitempty"`
	Affected []pkgAffect `json:"affected"`
}

// pkgAffect is one affected entry of a record for the package.
type pkgAffect struct {
	Severity string     `json:"severity"`
	Ranges   []osvRange `json:"ranges,omitempty"`
	Versions []string   `json:"versions,omitempty"`
}

var pypiSeparators = regexp.MustCompile(`[-_.]+`)

// packageName is the name a package is indexed and looked up under: PyPI
// names are normalized (PEP 503), as PyPI treats "Foo_Bar" and "foo-bar"
// as one project; other ecosystems' names are exact.
func packageName(ecosystem, name string) string {
	if ecosystem == "PyPI" {
		return pypiSeparators.ReplaceAllString(strings.ToLower(name), "-")
	}
	return name
}

// Match returns the advisories that affect p, by id. Records are matched
// on exactly p's ecosystem and name; a version is affected when a
// `versions` list names it or an ECOSYSTEM or SEMVER range holds it.
// It returns ErrNoDatabase while no database was imported.
func (db *DB) Match(ctx context.Context, p Package) ([]Vuln, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.version == 0 {
		return nil, ErrNoDatabase
	}
	if _, err := parseVersion(p.Version, p.Ecosystem, rangeEcosystem); err != nil && !errors.Is(err, semantic.ErrUnsupportedEcosystem) {
		return nil, fmt.Errorf("%s package %s: version %q: %w", p.Ecosystem, p.Name, p.Version, err)
	}
	var out []Vuln
	err := db.o.Store.ScanVulns(ctx, db.version, p.Ecosystem, packageName(p.Ecosystem, p.Name), func(id string, v []byte) error {
		var e entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("vulnerability database entry %s of %s: %w", id, p.Name, err)
		}
		if vuln, ok := e.match(p); ok {
			out = append(out, vuln)
		}
		return nil
	})
	return out, err
}

// match reports whether e affects p, and the finding.
func (e *entry) match(p Package) (Vuln, bool) {
	hit := false
	severity := SeverityUndefined
	var fixed []string
	for _, a := range e.Affected {
		in := slices.Contains(a.Versions, p.Version)
		var fixes []string
		for _, rg := range a.Ranges {
			inRange, fix := rg.contains(p.Version, p.Ecosystem)
			in = in || inRange
			if inRange {
				fixes = append(fixes, fix...)
			}
		}
		if !in {
			continue
		}
		if !hit || severityRank[a.Severity] > severityRank[severity] {
			severity = a.Severity
		}
		hit = true
		fixed = append(fixed, fixes...)
	}
	if !hit {
		return Vuln{}, false
	}
	return Vuln{ID: e.ID, Aliases: e.Aliases, Summary: e.Summary, Severity: severity,
		FixedVersion: lowest(fixed, p.Ecosystem), URI: e.URI}, true
}

// parseVersion parses a version by the rules of a range type: SEMVER
// ranges hold SemVer 2.0 versions whatever the ecosystem; ECOSYSTEM
// ranges the ecosystem's own.
func parseVersion(v, ecosystem, rangeType string) (semantic.Version, error) {
	if rangeType == rangeSemver {
		return semantic.ParseSemverVersion(v), nil
	}
	return semantic.Parse(v, ecosystem)
}

// contains reports whether version is in the range, and the range's fixed
// versions above it (when it is). Events are applied in version order, as
// the OSV schema says: the last event at or below the version decides.
// A limit at or below the version puts it out of the range. Versions that
// do not parse are skipped.
func (rg osvRange) contains(version, ecosystem string) (bool, []string) {
	if rg.Type == rangeGit {
		return false, nil
	}
	v, err := parseVersion(version, ecosystem, rg.Type)
	if err != nil {
		return false, nil
	}
	var (
		deciding semantic.Version // the greatest event at or below v
		in       bool
		fixes    []string
	)
	for _, e := range rg.Events {
		at, kind := e.Introduced, "introduced"
		switch {
		case e.Fixed != "":
			at, kind = e.Fixed, "fixed"
		case e.LastAffected != "":
			at, kind = e.LastAffected, "last_affected"
		case e.Limit != "":
			at, kind = e.Limit, "limit"
		}
		if kind == "introduced" && at == "0" {
			if deciding == nil {
				in = true
			}
			continue
		}
		if kind == "limit" && at == "*" {
			continue
		}
		ev, err := parseVersion(at, ecosystem, rg.Type)
		if err != nil {
			continue
		}
		c, err := v.Compare(ev)
		if err != nil {
			continue
		}
		switch {
		case kind == "limit":
			if c >= 0 {
				return false, nil
			}
			continue
		case kind == "fixed" && c < 0:
			fixes = append(fixes, at)
		}
		applies := c > 0 || (c == 0 && kind != "last_affected")
		if !applies {
			continue
		}
		if deciding != nil {
			if d, err := ev.Compare(deciding); err != nil || d < 0 {
				continue
			}
		}
		deciding, in = ev, kind == "introduced"
	}
	if !in {
		return false, nil
	}
	return true, fixes
}

// lowest is the lowest of versions by the ecosystem's rules ("" if none).
func lowest(versions []string, ecosystem string) string {
	best := ""
	var bestV semantic.Version
	for _, s := range versions {
		v, err := semantic.Parse(s, ecosystem)
		if err != nil {
			v = semantic.ParseSemverVersion(s)
		}
		if bestV == nil {
			best, bestV = s, v
			continue
		}
		if c, err := v.Compare(bestV); err == nil && c < 0 {
			best, bestV = s, v
		}
	}
	return best
}
