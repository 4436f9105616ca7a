package vulndb

import (
	"encoding/json"
	"testing"
)

func TestCVSSScores(t *testing.T) {
	v3 := []struct {
		vector string
		score  float64
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N", 5.4},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1},
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10},
		{"CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.8},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0},
	}
	for _, tt := range v3 {
		if got, ok := cvss3(tt.vector); !ok || got != tt.score {
			t.Errorf("cvss3(%s) = %v %v, want %v", tt.vector, got, ok, tt.score)
		}
	}
	for _, bad := range []string{"AV:N/AC:L", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:4.0/AV:N"} {
		if got, ok := cvss3(bad); ok {
			t.Errorf("cvss3(%s) = %v, want no score", bad, got)
		}
	}
	if got, ok := cvss2("AV:N/AC:L/Au:N/C:P/I:P/A:P"); !ok || got != 7.5 {
		t.Errorf("cvss2 = %v %v, want 7.5", got, ok)
	}
	if got, ok := cvss2("AV:N/AC:M/Au:N/C:N/I:P/A:N"); !ok || got != 4.3 {
		t.Errorf("cvss2 = %v %v, want 4.3", got, ok)
	}
	// CVSS v4.0 base vectors and their scores (CVSS-B), as other
	// implementations of the specification's calculator give them.
	v4 := []struct {
		vector string
		score  float64
	}{
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0},
		{"CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 4.6},
		{"CVSS:4.0/AV:L/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 7.3},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:H/SI:H/SA:H", 7.9},
	}
	for _, tt := range v4 {
		if got, ok := cvss4(tt.vector); !ok || got != tt.score {
			t.Errorf("cvss4(%s) = %v %v, want %v", tt.vector, got, ok, tt.score)
		}
	}
	for _, bad := range []string{"CVSS:4.0/AV:N", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:X/VI:H/VA:H/SC:N/SI:N/SA:N"} {
		if got, ok := cvss4(bad); ok {
			t.Errorf("cvss4(%s) = %v, want no score", bad, got)
		}
	}
}

func TestSeverityOf(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		rec  record
		a    affected
		want string
	}{
		{record{}, affected{}, SeverityUndefined},
		{record{DatabaseSpecific: raw(`{"severity": "MODERATE"}`)}, affected{}, SeverityMedium},
		// The package's own label wins over the record's.
		{record{DatabaseSpecific: raw(`{"severity": "HIGH"}`)}, affected{EcosystemSpecific: raw(`{"severity": "low"}`)}, SeverityLow},
		// A label that says nothing falls through to the score.
		{record{DatabaseSpecific: raw(`{"severity": "untriaged"}`), Severity: []severity{{"CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}}, affected{}, SeverityCritical},
		{record{Severity: []severity{{"Ubuntu", "negligible"}}}, affected{}, SeverityInformational},
		{record{Severity: []severity{{"CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P"}, {"CVSS_V4", "CVSS:4.0/AV:N"}}}, affected{}, SeverityHigh},
		{record{DatabaseSpecific: raw(`{"severity": {"level": 3}}`)}, affected{}, SeverityUndefined},
		// A record scored only with CVSS v4, and one whose v4 score rates
		// above its v3 one: the highest rating wins.
		{record{Severity: []severity{{"CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}}, affected{}, SeverityCritical},
		{record{Severity: []severity{{"CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"},
			{"CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}}, affected{}, SeverityCritical},
		{record{Severity: []severity{{"CVSS_V4", "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}}}, affected{}, SeverityMedium},
	}
	for i, tt := range tests {
		if got := severityOf(&tt.rec, &tt.a); got != tt.want {
			t.Errorf("%d: severityOf = %s, want %s", i, got, tt.want)
		}
	}
}
