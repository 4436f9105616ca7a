package vulndb

import (
	"encoding/json"
	"math"
	"strings"
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
// else the highest rating of a CVSS v3 or v2 vector or an Ubuntu priority
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

// rate is CVSS v3's qualitative rating of a base score.
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

// vector splits a CVSS vector into its metrics.
func vector(v string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(v, "/") {
		if k, val, ok := strings.Cut(part, ":"); ok {
			m[k] = val
		}
	}
	return m
}

// weight is the weights of one metric's values.
type weight struct {
	metric string
	table  map[string]float64
}

// weigh is the weight of each metric's value in m, in w's order; false
// when a metric is missing or has a value the table does not know.
func weigh(m map[string]string, w []weight) ([]float64, bool) {
	x := make([]float64, len(w))
	for i, e := range w {
		val, ok := e.table[m[e.metric]]
		if !ok {
			return nil, false
		}
		x[i] = val
	}
	return x, true
}

// cvss3 is the base score of a CVSS v3.0 or v3.1 vector, by the
// specification's formulas.
func cvss3(v string) (float64, bool) {
	if !strings.HasPrefix(v, "CVSS:3.") {
		return 0, false
	}
	m := vector(v)
	changed := m["S"] == "C"
	pr := map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}
	if changed {
		pr = map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}
	}
	cia := map[string]float64{"H": 0.56, "L": 0.22, "N": 0}
	x, ok := weigh(m, []weight{
		{"AV", map[string]float64{"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}},
		{"AC", map[string]float64{"L": 0.77, "H": 0.44}},
		{"PR", pr},
		{"UI", map[string]float64{"N": 0.85, "R": 0.62}},
		{"C", cia}, {"I", cia}, {"A", cia},
	})
	if !ok {
		return 0, false
	}
	iss := 1 - (1-x[4])*(1-x[5])*(1-x[6])
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	if impact <= 0 {
		return 0, true
	}
	sum := impact + 8.22*x[0]*x[1]*x[2]*x[3]
	if changed {
		sum *= 1.08
	}
	return roundUp(math.Min(sum, 10)), true
}

// roundUp is CVSS v3.1's Roundup: the smallest one-decimal number not
// below x, computed in integers against floating-point noise.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}

// cvss2 is the base score of a CVSS v2 vector.
func cvss2(v string) (float64, bool) {
	m := vector(v)
	cia := map[string]float64{"N": 0, "P": 0.275, "C": 0.660}
	x, ok := weigh(m, []weight{
		{"AV", map[string]float64{"L": 0.395, "A": 0.646, "N": 1}},
		{"AC", map[string]float64{"H": 0.35, "M": 0.61, "L": 0.71}},
		{"Au", map[string]float64{"M": 0.45, "S": 0.56, "N": 0.704}},
		{"C", cia}, {"I", cia}, {"A", cia},
	})
	if !ok {
		return 0, false
	}
	impact := 10.41 * (1 - (1-x[3])*(1-x[4])*(1-x[5]))
	if impact == 0 {
		return 0, true
	}
	score := (0.6*impact + 0.4*20*x[0]*x[1]*x[2] - 1.5) * 1.176
	return math.Round(score*10) / 10, true
}
