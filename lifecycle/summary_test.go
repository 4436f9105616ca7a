package lifecycle

import (
	"reflect"
	"testing"
)

func TestSummarize(t *testing.T) {
	p := mustParse(t,
		rule(7, sel(anyTag, count, 10)),
		rule(1, sel(untagged, count, 1)),
		rule(2, sel(prefixes("nothing"), count, 1)),
	)
	tests := []struct {
		name    string
		p       *Policy
		results []Result
		want    Summary
	}{
		{
			name:    "every rule listed, in priority order",
			p:       p,
			results: Evaluate(p, fixture(), now), // 1: 10, 09; 7: 01
			want: Summary{
				Rules: []RuleSummary{
					{RulePriority: 1, Description: "r1", Images: 2, Bytes: 10000 + 9000},
					{RulePriority: 2, Description: "r2"},
					{RulePriority: 7, Description: "r7", Images: 1, Bytes: 1000},
				},
				Images: 3,
				Bytes:  20000,
			},
		},
		{
			name:    "without policy",
			results: []Result{{RulePriority: 4, Size: 5}, {RulePriority: 2, Size: 1}, {RulePriority: 4, Size: 7}},
			want: Summary{
				Rules:  []RuleSummary{{RulePriority: 2, Images: 1, Bytes: 1}, {RulePriority: 4, Images: 2, Bytes: 12}},
				Images: 3,
				Bytes:  13,
			},
		},
		{name: "nothing", want: Summary{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.p, tt.results); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}
