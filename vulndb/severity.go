package vulndb

import (
	"encoding/json"
	"strings"

	cvss20 "github.com/pandatix/go-cvss/20"
	cvss30 "github.com/pandatix/go-cvss/30"
	cvss31 "github.com/pandatix/go-cvss/31"
	cvss40 "github.com/pandatix/go-cvss/40"
)

// ECR's severity levels.
const (
	SeverityCritical      = "CRITICAL"
	SeverityHigh          = "HIGH"
	SeverityMedium        = "MEDIUM"
	SeverityLow           = "LOW"
	SeverityInformational = "INFORMATIONAL"
	SeverityUndefined     = "UNDEFINED"
)

// severityOf is the severity of a record for one of its affected entries:
// a label the database gives (the entry's ecosystem_specific or
// database_specific severity, else the record's database_specific one),
// else the highest rating of a CVSS v4, v3 or v2 vector or an Ubuntu priority
// (the entry's severity list, else the record's), else UNDEFINED.
func severityOf(r *record, a *affected) string {
	for _, raw := range []json.RawMessage{a.EcosystemSpecific, a.DatabaseSpecific, r.DatabaseSpecific} {
		if s := labelIn(raw); s != "" {
			return s
		}
	}
	for _, list := range [][]severity{a.Severity, r.Severity} {
		if s := rateList(list); s != "" {
			return s
		}
	}
	return SeverityUndefined
}

// labelIn reads a "severity" string field of a database_specific or
// ecosystem_specific object.
func labelIn(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var o struct {
		Severity json.RawMessage `json:"severity"`
	}
	var s string
	if json.Unmarshal(raw, &o) != nil || json.Unmarshal(o.Severity, &s) != nil {
		return ""
	}
	return label(s)
}

// label maps a database's severity word to ECR's level ("" when the word
// says nothing, like "untriaged").
func label(s string) string {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "CRITICAL":
		return SeverityCritical
	case "HIGH", "IMPORTANT":
		return SeverityHigh
	case "MODERATE", "MEDIUM":
		return SeverityMedium
	case "LOW":
		return SeverityLow
	case "NEGLIGIBLE", "UNIMPORTANT", "NONE", "INFORMATIONAL":
		return SeverityInformational
	}
	return ""
}

var severityRank = map[string]int{SeverityInformational: 1, SeverityLow: 2, SeverityMedium: 3, SeverityHigh: 4, SeverityCritical: 5}

// rateList is the highest level a severity list gives.
func rateList(list []severity) string {
	best := ""
	for _, s := range list {
		var level string
		switch s.Type {
		case "CVSS_V3":
			if score, ok := cvss3(s.Score); ok {
				level = rate(score)
			}
		case "CVSS_V4":
			if score, ok := cvss4(s.Score); ok {
				level = rate(score)
			}
		case "CVSS_V2":
			if score, ok := cvss2(s.Score); ok {
				level = rateV2(score)
			}
		case "Ubuntu":
			level = label(s.Score)
		}
		if severityRank[level] > severityRank[best] {
			best = level
		}
	}
	return best
}

// rate is the qualitative rating of a CVSS v3 or v4 score (the two
// specifications share it).
func rate(score float64) string {
	switch {
	case score >= 9:
		return SeverityCritical
	case score >= 7:
		return SeverityHigh
	case score >= 4:
		return SeverityMedium
	case score > 0:
		return SeverityLow
	}
	return SeverityInformational
}

// rateV2 is NVD's rating of a CVSS v2 base score.
func rateV2(score float64) string {
	switch {
	case score >= 7:
		return SeverityHigh
	case score >= 4:
		return SeverityMedium
	}
	return SeverityLow
}

// cvss3 is the base score of a CVSS v3.0 or v3.1 vector.
func cvss3(v string) (float64, bool) {
	switch {
	case strings.HasPrefix(v, "CVSS:3.1/"):
		c, err := cvss31.ParseVector(v)
		if err != nil {
			return 0, false
		}
		return c.BaseScore(), true
	case strings.HasPrefix(v, "CVSS:3.0/"):
		c, err := cvss30.ParseVector(v)
		if err != nil {
			return 0, false
		}
		return c.BaseScore(), true
	}
	return 0, false
}

// cvss2 is the base score of a CVSS v2 vector.
func cvss2(v string) (float64, bool) {
	c, err := cvss20.ParseVector(v)
	if err != nil {
		return 0, false
	}
	return c.BaseScore(), true
}

// cvss4 is the score of a CVSS v4.0 vector (CVSS-B when it gives only
// base metrics, as databases do).
func cvss4(v string) (float64, bool) {
	c, err := cvss40.ParseVector(v)
	if err != nil {
		return 0, false
	}
	return c.Score(), true
}
