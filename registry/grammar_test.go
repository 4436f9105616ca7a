package registry

import (
	"regexp"
	"testing"
)

// The spec's grammars as regular expressions: the reference the hand-written
// checks are held to.
var (
	specNameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	specName          = regexp.MustCompile(`^` + specNameComponent + `(?:/` + specNameComponent + `)*$`)
	specTag           = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func TestGrammarsMatchTheSpec(t *testing.T) {
	names := []string{"", "a", "a/b", "a//b", "/a", "a/", "a.b", "a..b", "a_b", "a__b", "a___b", "a-b", "a---b",
		"a._b", "a-.b", "A", "a/B", "a.", "-a", "a-", "0", "library/alpine", "a/b/c/d", "a__b/c--d.e", "ab_", "a_-b"}
	for _, n := range names {
		if got, want := ValidName(n), specName.MatchString(n); got != want {
			t.Errorf("ValidName(%q) = %v, the spec says %v", n, got, want)
		}
	}
	tags := []string{"", "v1", "_x", ".x", "-x", "A.b-c_d", "a:b", "sha256-abc", string(make([]byte, 129))}
	for _, tg := range tags {
		if got, want := ValidTag(tg), specTag.MatchString(tg); got != want {
			t.Errorf("ValidTag(%q) = %v, the spec says %v", tg, got, want)
		}
	}
}

func FuzzGrammarsMatchTheSpec(f *testing.F) {
	for _, s := range []string{"a/b", "a__b", "a---b", "a._b", "v1.2-rc_3", "A", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) <= MaxNameLength && ValidName(s) != specName.MatchString(s) {
			t.Fatalf("ValidName(%q) = %v, the spec says %v", s, ValidName(s), specName.MatchString(s))
		}
		if ValidTag(s) != specTag.MatchString(s) {
			t.Fatalf("ValidTag(%q) = %v, the spec says %v", s, ValidTag(s), specTag.MatchString(s))
		}
	})
}
