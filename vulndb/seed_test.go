package vulndb

import (
	"archive/zip"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
)

// The seeded database: records in OSV's own shape, one per ecosystem the
// scanner extracts, with fixed versions that must not match.
var seedRecords = map[string]string{
	// Debian:12 openssl, fixed in the bookworm security update.
	"debian/DEBIAN-CVE-2023-5678.json": `{
  "schema_version": "1.6.0", "id": "DEBIAN-CVE-2023-5678", "modified": "2024-02-01T10:00:00Z",
  "aliases": ["CVE-2023-5678"], "summary": "openssl: excessive time spent in DH check",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}],
  "references": [{"type": "WEB", "url": "https://security-tracker.debian.org/tracker/CVE-2023-5678"},
    {"type": "ADVISORY", "url": "https://www.debian.org/security/2024/dsa-5600"}]}`,
	// The same package in Debian:11: must not match bookworm's openssl.
	"debian/DEBIAN-CVE-2023-0464.json": `{
  "id": "DEBIAN-CVE-2023-0464", "modified": "2023-05-01T10:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:11", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1n-0+deb11u5"}]}]}]}`,
	// An Alpine apk, with a package-specific severity.
	"alpine/ALPINE-CVE-2023-42363.json": `{
  "id": "ALPINE-CVE-2023-42363", "modified": "2024-06-01T00:00:00Z",
  "details": "A use-after-free in busybox awk.\nMore text.",
  "affected": [{"package": {"ecosystem": "Alpine:v3.20", "name": "busybox"},
    "ecosystem_specific": {"severity": "moderate"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.36.1-r29"}]}]}],
  "references": [{"type": "WEB", "url": "https://security.alpinelinux.org/vuln/CVE-2023-42363"}]}`,
	// A Go module, as the Go vulnerability database writes it.
	"go/GO-2022-1059.json": `{
  "id": "GO-2022-1059", "modified": "2023-06-12T18:45:41Z",
  "aliases": ["CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"],
  "summary": "Denial of service via crafted Accept-Language header in golang.org/x/text/language",
  "affected": [{"package": {"name": "golang.org/x/text", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.8"}]},
               {"type": "GIT", "repo": "https://go.googlesource.com/text", "events": [{"introduced": "0"}, {"fixed": "434eadcdbc3b"}]}]}],
  "references": [{"type": "REPORT", "url": "https://go.dev/issue/56152"}, {"type": "WEB", "url": "https://pkg.go.dev/vuln/GO-2022-1059"}]}`,
	// PEP 440: 1.0rc1 comes before 1.0; the name is normalized.
	"pypi/PYSEC-2024-1.json": `{
  "id": "PYSEC-2024-1", "modified": "2024-03-01T00:00:00Z", "summary": "foo-bar leaks tokens",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"}],
  "affected": [{"package": {"ecosystem": "PyPI", "name": "foo-bar"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}],
    "versions": ["0.9", "1.0rc1"]}]}`,
	// Maven: a fixed range and a last_affected one.
	"maven/GHSA-jfh8-c2jp-5v3q.json": `{
  "id": "GHSA-jfh8-c2jp-5v3q", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-2021-44228"],
  "summary": "Remote code injection in Log4j", "database_specific": {"severity": "CRITICAL"},
  "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}]}],
  "references": [{"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"}]}`,
	"maven/GHSA-7rjr-3q55-vv33.json": `{
  "id": "GHSA-7rjr-3q55-vv33", "modified": "2024-01-02T00:00:00Z", "database_specific": {"severity": "MODERATE"},
  "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.15.0"}, {"last_affected": "2.16.0"}]}]}]}`,
	// RPM: epoch and release compared by rpm's rules.
	"redhat/RHSA-2024:2447.json": `{
  "id": "RHSA-2024:2447", "modified": "2024-05-01T00:00:00Z", "database_specific": {"severity": "Moderate"},
  "affected": [{"package": {"ecosystem": "Red Hat", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-27.el9"}]}]}]}`,
	// Ubuntu: dpkg rules, a priority in the severity list.
	"ubuntu/UBUNTU-CVE-2024-0727.json": `{
  "id": "UBUNTU-CVE-2024-0727", "modified": "2024-02-01T00:00:00Z",
  "severity": [{"type": "Ubuntu", "score": "low"}],
  "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.2-0ubuntu1.15"}]}]}]}`,
	// RubyGems: 2.2.3.1 comes after 2.2.3, prereleases before releases.
	"rubygems/GHSA-rack.json": `{
  "id": "GHSA-22f2-v57c-j9cx", "modified": "2024-01-01T00:00:00Z", "database_specific": {"severity": "HIGH"},
  "affected": [{"package": {"ecosystem": "RubyGems", "name": "rack"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.2.0"}, {"fixed": "2.2.3.1"}]}]}]}`,
	// crates.io: SemVer.
	"crates/RUSTSEC-2021-0003.json": `{
  "id": "RUSTSEC-2021-0003", "modified": "2024-01-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "crates.io", "name": "smallvec"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.6.1"}]}]}]}`,
}

// seedZip is an npm dump, as OSV publishes one per ecosystem (all.zip).
var seedZip = map[string]string{
	// Two ranges, as package-lock.json versions.
	"GHSA-xvch-5gv4-984h.json": `{
  "id": "GHSA-xvch-5gv4-984h", "modified": "2024-04-01T00:00:00Z", "aliases": ["CVE-2021-44906"],
  "summary": "Prototype Pollution in minimist", "database_specific": {"severity": "CRITICAL"},
  "affected": [{"package": {"ecosystem": "npm", "name": "minimist"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.2.4"}]}]},
   {"package": {"ecosystem": "npm", "name": "minimist"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.6"}]}]}],
  "references": [{"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-xvch-5gv4-984h"}]}`,
	// Withdrawn: never matched.
	"GHSA-wwww-wwww-wwww.json": `{
  "id": "GHSA-wwww-wwww-wwww", "modified": "2024-04-02T00:00:00Z", "withdrawn": "2024-04-03T00:00:00Z",
  "affected": [{"package": {"ecosystem": "npm", "name": "minimist"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}`,
}

// writeFiles writes files (relative name -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeZip writes a zip dump of files to path.
func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// seed writes the seeded database: a directory of JSON files and an npm
// zip dump. It returns their paths.
func seed(t *testing.T) (dir, zipPath string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "osv")
	writeFiles(t, dir, seedRecords)
	writeFiles(t, dir, map[string]string{"README.md": "not a record"})
	zipPath = filepath.Join(root, "npm-all.zip")
	writeZip(t, zipPath, seedZip)
	return dir, zipPath
}

// testNow is the tests' clock.
var testNow = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)

// openDB opens a DB on a new store in dir.
func openDB(t *testing.T, dir string, reg prometheus.Registerer) (*DB, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := Open(ctx, Options{Store: st, Registerer: reg, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return db, st
}

// seededDB is a DB with the seeded database imported.
func seededDB(t *testing.T) *DB {
	t.Helper()
	db, _ := openDB(t, t.TempDir(), nil)
	dir, zipPath := seed(t)
	if _, err := db.ImportPaths(context.Background(), dir, zipPath); err != nil {
		t.Fatalf("ImportPaths: %v", err)
	}
	return db
}
