package vulndb

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestMatchSeeded(t *testing.T) {
	db := seededDB(t)
	debian := Vuln{ID: "DEBIAN-CVE-2023-5678", Aliases: []string{"CVE-2023-5678"},
		Summary: "openssl: excessive time spent in DH check", Severity: SeverityCritical,
		FixedVersion: "3.0.13-1~deb12u1", URI: "https://www.debian.org/security/2024/dsa-5600"}
	alpine := Vuln{ID: "ALPINE-CVE-2023-42363", Summary: "A use-after-free in busybox awk.",
		Severity: SeverityMedium, FixedVersion: "1.36.1-r29", URI: "https://security.alpinelinux.org/vuln/CVE-2023-42363"}
	goText := Vuln{ID: "GO-2022-1059", Aliases: []string{"CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"},
		Summary:  "Denial of service via crafted Accept-Language header in golang.org/x/text/language",
		Severity: SeverityUndefined, FixedVersion: "0.3.8", URI: "https://pkg.go.dev/vuln/GO-2022-1059"}
	minimist := func(fixed string) Vuln {
		return Vuln{ID: "GHSA-xvch-5gv4-984h", Aliases: []string{"CVE-2021-44906"}, Summary: "Prototype Pollution in minimist",
			Severity: SeverityCritical, FixedVersion: fixed, URI: "https://github.com/advisories/GHSA-xvch-5gv4-984h"}
	}
	pypi := Vuln{ID: "PYSEC-2024-1", Summary: "foo-bar leaks tokens", Severity: SeverityMedium, FixedVersion: "1.0"}
	log4shell := Vuln{ID: "GHSA-jfh8-c2jp-5v3q", Aliases: []string{"CVE-2021-44228"}, Summary: "Remote code injection in Log4j",
		Severity: SeverityCritical, FixedVersion: "2.15.0", URI: "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"}
	log4jLast := Vuln{ID: "GHSA-7rjr-3q55-vv33", Severity: SeverityMedium}

	tests := []struct {
		eco, name, version string
		want               []Vuln
	}{
		{"Debian:12", "openssl", "3.0.11-1~deb12u2", []Vuln{debian}},
		{"Debian:12", "openssl", "3.0.13-1~deb12u1", nil}, // the fix
		{"Debian:12", "openssl", "3.0.15-1~deb12u1", nil},
		{"Debian:12", "openssl", "1.1.1n-0+deb11u4", []Vuln{debian}}, // Debian:11's record stays out
		{"Debian:11", "openssl", "1.1.1n-0+deb11u4", []Vuln{{ID: "DEBIAN-CVE-2023-0464", Severity: SeverityUndefined, FixedVersion: "1.1.1n-0+deb11u5"}}},
		{"Debian:13", "openssl", "3.0.11-1~deb12u2", nil},
		{"debian:12", "openssl", "3.0.11-1~deb12u2", nil}, // ecosystems are case-exact
		{"Debian:12", "libssl3", "3.0.11-1~deb12u2", nil},
		{"Alpine:v3.20", "busybox", "1.36.1-r28", []Vuln{alpine}},
		{"Alpine:v3.20", "busybox", "1.36.1-r29", nil},
		{"Alpine:v3.20", "busybox", "1.36.1-r30", nil},
		{"Alpine:v3.19", "busybox", "1.36.1-r28", nil},
		{"Go", "golang.org/x/text", "v0.3.7", []Vuln{goText}},
		{"Go", "golang.org/x/text", "0.3.7", []Vuln{goText}},
		{"Go", "golang.org/x/text", "v0.3.8", nil},
		{"Go", "golang.org/x/text", "v0.14.0", nil},
		{"npm", "minimist", "0.2.1", []Vuln{minimist("0.2.4")}},
		{"npm", "minimist", "1.0.0", []Vuln{minimist("1.2.6")}},
		{"npm", "minimist", "1.2.5", []Vuln{minimist("1.2.6")}},
		{"npm", "minimist", "0.2.4", nil},
		{"npm", "minimist", "1.2.6", nil},
		{"npm", "minimist", "1.2.8", nil},
		{"PyPI", "Foo_Bar", "1.0rc1", []Vuln{pypi}},
		{"PyPI", "foo.bar", "0.9", []Vuln{pypi}},
		{"PyPI", "foo-bar", "0.5", []Vuln{pypi}},
		{"PyPI", "foo-bar", "1.0", nil},
		{"PyPI", "foo-bar", "1.0.post1", nil},
		{"Maven", "org.apache.logging.log4j:log4j-core", "2.14.1", []Vuln{log4shell}},
		{"Maven", "org.apache.logging.log4j:log4j-core", "2.0-beta9", []Vuln{log4shell}},
		{"Maven", "org.apache.logging.log4j:log4j-core", "2.0-alpha1", nil},
		{"Maven", "org.apache.logging.log4j:log4j-core", "2.15.0", []Vuln{log4jLast}},
		{"Maven", "org.apache.logging.log4j:log4j-core", "2.16.0", []Vuln{log4jLast}}, // last_affected is inclusive
		{"Maven", "org.apache.logging.log4j:log4j-core", "2.17.0", nil},
		{"Red Hat", "openssl", "1:3.0.7-25.el9", []Vuln{{ID: "RHSA-2024:2447", Severity: SeverityMedium, FixedVersion: "1:3.0.7-27.el9"}}},
		{"Red Hat", "openssl", "1:3.0.7-27.el9", nil},
		{"Red Hat", "openssl", "1:3.1.0-1.el9", nil},
		{"Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.14", []Vuln{{ID: "UBUNTU-CVE-2024-0727", Severity: SeverityLow, FixedVersion: "3.0.2-0ubuntu1.15"}}},
		{"Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.15", nil},
		{"RubyGems", "rack", "2.2.3", []Vuln{{ID: "GHSA-22f2-v57c-j9cx", Severity: SeverityHigh, FixedVersion: "2.2.3.1"}}},
		{"RubyGems", "rack", "2.2.3.1", nil},
		{"RubyGems", "rack", "2.2.0.beta1", nil},
		{"crates.io", "smallvec", "1.6.0", []Vuln{{ID: "RUSTSEC-2021-0003", Severity: SeverityUndefined, FixedVersion: "1.6.1"}}},
		{"crates.io", "smallvec", "1.6.1", nil},
		{"crates.io", "smallvec", "0.6.14", nil},
	}
	for _, tt := range tests {
		got, err := db.Match(context.Background(), Package{Ecosystem: tt.eco, Name: tt.name, Version: tt.version})
		if err != nil {
			t.Errorf("Match(%s %s %s): %v", tt.eco, tt.name, tt.version, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Match(%s %s %s) =\n  %+v\nwant\n  %+v", tt.eco, tt.name, tt.version, got, tt.want)
		}
	}
}

func TestMatchWithoutDatabase(t *testing.T) {
	db, _ := openDB(t, t.TempDir(), nil)
	if _, err := db.Match(context.Background(), Package{"Go", "golang.org/x/text", "0.3.7"}); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("Match with no database: %v, want ErrNoDatabase", err)
	}
	if _, err := db.Describe(context.Background()); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("Describe with no database: %v, want ErrNoDatabase", err)
	}
}

func TestMatchRefusesAnUnparsableVersion(t *testing.T) {
	db := seededDB(t)
	_, err := db.Match(context.Background(), Package{"Debian:12", "openssl", "x:1.0-1"})
	if err == nil {
		t.Fatal("Match of a Debian version that does not parse: no error")
	}
}

// TestRangeEvents covers events the seeded records do not: limits,
// several introduced events, unsorted events.
func TestRangeEvents(t *testing.T) {
	rg := func(evs ...event) osvRange { return osvRange{Type: rangeSemver, Events: evs} }
	tests := []struct {
		rg      osvRange
		version string
		in      bool
		fixes   []string
	}{
		{rg(event{Introduced: "1.0.0"}, event{Limit: "2.0.0"}), "1.5.0", true, nil},
		{rg(event{Introduced: "1.0.0"}, event{Limit: "2.0.0"}), "2.0.0", false, nil},
		{rg(event{Introduced: "1.0.0"}, event{Limit: "*"}), "9.0.0", true, nil},
		{rg(event{Fixed: "1.2.0"}, event{Introduced: "1.0.0"}, event{Fixed: "2.1.0"}, event{Introduced: "2.0.0"}), "1.1.0", true, []string{"1.2.0", "2.1.0"}},
		{rg(event{Fixed: "1.2.0"}, event{Introduced: "1.0.0"}, event{Fixed: "2.1.0"}, event{Introduced: "2.0.0"}), "1.5.0", false, nil},
		{rg(event{Fixed: "1.2.0"}, event{Introduced: "1.0.0"}, event{Fixed: "2.1.0"}, event{Introduced: "2.0.0"}), "2.0.0", true, []string{"2.1.0"}},
		{rg(event{Introduced: "1.0.0"}), "0.9.0", false, nil},
		{osvRange{Type: rangeGit, Events: []event{{Introduced: "0"}}}, "1.0.0", false, nil},
	}
	for _, tt := range tests {
		in, fixes := tt.rg.contains(tt.version, "npm")
		if in != tt.in || !reflect.DeepEqual(fixes, tt.fixes) {
			t.Errorf("%+v contains %s = %v %v, want %v %v", tt.rg.Events, tt.version, in, fixes, tt.in, tt.fixes)
		}
	}
}
