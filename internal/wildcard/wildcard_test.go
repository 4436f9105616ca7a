package wildcard

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		name, pattern, s string
		want             bool
	}{
		{"literal", "private/app", "private/app", true},
		{"literal differs", "private/app", "private/apps", false},
		{"star crosses slashes", "private/*", "private/team/app", true},
		{"star matches nothing", "v*", "v", true},
		{"inner star", "prod-*-eu", "prod-web-eu", true},
		{"inner star no match", "prod-*-eu", "prod-web-us", false},
		{"backtracking", "*a*b", "xaaab", true},
		{"only stars", "**", "", true},
		{"empty pattern", "", "x", false},
		{"trailing text", "a*", "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.pattern, tt.s); got != tt.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}
