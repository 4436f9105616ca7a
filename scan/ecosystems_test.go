package scan

import (
	"slices"
	"strings"
	"testing"

	"berth/scan/scantest"
)

// langFiles are the lock and metadata files of PyPI (a wheel's METADATA
// and a requirements file), Maven, Cargo and RubyGems, each naming one
// package at a version the caller picks.
func langFiles(requests, django, log4j, smallvec, nokogiri string) []scantest.File {
	return []scantest.File{
		{Name: "usr/lib/python3/site-packages/requests-" + requests + ".dist-info/METADATA",
			Body: []byte("Metadata-Version: 2.1\nName: requests\nVersion: " + requests + "\nSummary: HTTP\n")},
		{Name: "srv/app/requirements.txt", Body: []byte("Django==" + django + "\n")},
		{Name: "srv/java/pom.xml", Body: []byte(`<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId><artifactId>app</artifactId><version>1.0</version>
  <dependencies><dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>` + log4j + `</version></dependency></dependencies>
</project>
`)},
		{Name: "srv/rust/Cargo.lock", Body: []byte("version = 3\n\n[[package]]\nname = \"smallvec\"\nversion = \"" + smallvec + "\"\n")},
		{Name: "srv/ruby/Gemfile.lock", Body: []byte("GEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (" + nokogiri +
			")\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  nokogiri\n\nBUNDLED WITH\n   2.3.0\n")},
	}
}

// advisory is an OSV record: pkg in eco affected from 0 to fixed.
func advisory(id, eco, pkg, fixed, rangeType string) string {
	return `{"id": "` + id + `", "modified": "2024-02-01T00:00:00Z", "summary": "a test advisory",
  "database_specific": {"severity": "HIGH"},
  "affected": [{"package": {"ecosystem": "` + eco + `", "name": "` + pkg + `"},
    "ranges": [{"type": "` + rangeType + `", "events": [{"introduced": "0"}, {"fixed": "` + fixed + `"}]}]}]}`
}

var langRecords = map[string]string{
	"PYSEC-requests.json":   advisory("PYSEC-2099-1", "PyPI", "requests", "2.31.0", "ECOSYSTEM"),
	"PYSEC-django.json":     advisory("PYSEC-2099-2", "PyPI", "django", "4.2.2", "ECOSYSTEM"),
	"GHSA-log4j.json":       advisory("GHSA-jfh8-c2jp-5v3q", "Maven", "org.apache.logging.log4j:log4j-core", "2.15.0", "ECOSYSTEM"),
	"RUSTSEC-smallvec.json": advisory("RUSTSEC-2021-0003", "crates.io", "smallvec", "1.6.1", "SEMVER"),
	"GHSA-nokogiri.json":    advisory("GHSA-2qc6-mcvw-92cw", "RubyGems", "nokogiri", "1.13.4", "ECOSYSTEM"),
}

// The language ecosystems the issue names beyond npm and Go: each package
// is found in its file and matched by its ecosystem's version rules (PEP
// 440, Maven, semver, RubyGems); the fixed versions have no finding.
func TestScanFindsLanguagePackages(t *testing.T) {
	e := newEnv(t, nil)
	e.importDB(t, langRecords)

	vuln := scantest.Image(t, scantest.Layer(t, langFiles("2.30.0", "4.2.0", "2.14.1", "1.6.0", "1.13.0")...))
	r := e.scan(t, "app/lang", e.put(t, "app/lang", vuln))
	want := []string{
		"GHSA-2qc6-mcvw-92cw nokogiri 1.13.0 1.13.4",
		"GHSA-jfh8-c2jp-5v3q org.apache.logging.log4j:log4j-core 2.14.1 2.15.0",
		"PYSEC-2099-1 requests 2.30.0 2.31.0",
		"PYSEC-2099-2 django 4.2.0 4.2.2",
		"RUSTSEC-2021-0003 smallvec 1.6.0 1.6.1",
	}
	if r.Status != StatusComplete || !slices.Equal(found(r), want) {
		t.Fatalf("status %s %q\nfindings:\n got %q\nwant %q\npackages %+v", r.Status, r.Description, found(r), want, r.Packages)
	}
	ecos := map[string]bool{}
	for _, f := range r.Findings {
		ecos[f.Attr("package_ecosystem")] = true
	}
	for _, eco := range []string{"PyPI", "Maven", "crates.io", "RubyGems"} {
		if !ecos[eco] {
			t.Errorf("no finding names ecosystem %s: %v", eco, ecos)
		}
	}

	// Fixed versions, some written as their ecosystems allow (PEP 440's
	// "4.2.2.post1" is after 4.2.2; Maven's "2.15.0" equals "2.15").
	fixed := scantest.Image(t, scantest.Layer(t, langFiles("2.31.0", "4.2.2.post1", "2.15", "1.6.1", "1.13.4")...))
	if r := e.scan(t, "app/lang-fixed", e.put(t, "app/lang-fixed", fixed)); r.Status != StatusComplete || len(r.Findings) != 0 || len(r.Packages) != 5 {
		t.Fatalf("fixed versions: status %s, findings %q, packages %+v (want all 5 found, none vulnerable)",
			r.Status, strings.Join(found(r), "; "), r.Packages)
	}
}

// rpm: the packages of a real rpm database are matched by rpm's version
// rules with their epochs, which the Red Hat family's advisories write: a
// package at exactly the fixed epoch:version has no finding.
func TestScanFindsRPMPackages(t *testing.T) {
	e := newEnv(t, nil)
	e.importDB(t, map[string]string{
		"ALSA-1.json": advisory("ALSA-2099:0001", "AlmaLinux:9", "openssl-libs", "1:3.0.7-16.el9_2", "ECOSYSTEM"),
		"ALSA-2.json": advisory("ALSA-2099:0002", "AlmaLinux:9", "openssl", "1:3.0.7-6.el9_2", "ECOSYSTEM"),
		"ALSA-3.json": advisory("ALSA-2099:0003", "AlmaLinux:9", "bash", "5.1.8-9.el9", "ECOSYSTEM"),
		"ALSA-4.json": advisory("ALSA-2099:0004", "AlmaLinux:9", "bash", "5.1.8-6.el9_1", "ECOSYSTEM"),
	})
	img := scantest.Image(t, scantest.Layer(t, scantest.AlmaRelease,
		scantest.File{Name: "var/lib/rpm/rpmdb.sqlite", Body: scantest.RPMDB(t)}))
	r := e.scan(t, "app/rpm", e.put(t, "app/rpm", img))
	want := []string{
		"ALSA-2099:0001 openssl-libs 1:3.0.7-6.el9_2 1:3.0.7-16.el9_2",
		"ALSA-2099:0003 bash 5.1.8-6.el9_1 5.1.8-9.el9",
	}
	if r.Status != StatusComplete || !slices.Equal(found(r), want) {
		t.Fatalf("status %s %q\nfindings:\n got %q\nwant %q", r.Status, r.Description, found(r), want)
	}
	if len(r.Packages) != 141 || r.Packages[0].Ecosystem != "AlmaLinux:9" {
		t.Errorf("%d packages (first %+v), want the database's 141 in AlmaLinux:9", len(r.Packages), r.Packages[0])
	}
}
