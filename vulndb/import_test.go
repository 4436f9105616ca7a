package vulndb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDescribeSeeded(t *testing.T) {
	db := seededDB(t)
	info, err := db.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantEcos := map[string]int{"Debian:12": 1, "Debian:11": 1, "Alpine:v3.20": 1, "Go": 1, "PyPI": 1, "Maven": 2, "npm": 1,
		"Red Hat": 1, "Ubuntu:22.04:LTS": 1, "RubyGems": 1, "crates.io": 1}
	if info.Version != 1 || info.Records != 12 || info.Withdrawn != 1 || !reflect.DeepEqual(info.Ecosystems, wantEcos) {
		t.Fatalf("Describe = %+v", info)
	}
	if !slices.Equal(info.Sources, []string{"osv", "npm-all.zip"}) || info.Fingerprint == "" || !info.ImportedAt.Equal(testNow) {
		t.Fatalf("Describe sources, fingerprint, time = %v %q %v", info.Sources, info.Fingerprint, info.ImportedAt)
	}
	newest := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC) // the Alpine record's
	if !info.Newest.Equal(newest) || info.AgeSeconds != testNow.Sub(newest).Seconds() {
		t.Fatalf("Describe newest %v age %v", info.Newest, info.AgeSeconds)
	}
}

func ids(t *testing.T, db *DB, p Package) []string {
	t.Helper()
	vs, err := db.Match(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

// TestImportReplaces: a new import is a new version; what only the old one
// held is gone, and the old version's entries are dropped from the store.
func TestImportReplaces(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	db, st := openDB(t, t.TempDir(), reg)
	updates := db.Subscribe()
	dir, zipPath := seed(t)
	if _, err := db.ImportPaths(ctx, dir, zipPath); err != nil {
		t.Fatal(err)
	}
	if got := <-updates; got.Version != 1 {
		t.Fatalf("notified of %+v", got)
	}
	openssl := Package{"Debian:12", "openssl", "3.0.11-1~deb12u2"}
	text := Package{"Go", "golang.org/x/text", "0.3.7"}
	if len(ids(t, db, openssl)) != 1 || len(ids(t, db, text)) != 1 {
		t.Fatal("the first import does not match")
	}

	next := t.TempDir()
	writeFiles(t, next, map[string]string{
		"GO-2022-1059.json": seedRecords["go/GO-2022-1059.json"],
		"GO-2023-1.json": `{"id": "GO-2023-1", "modified": "2024-05-01T00:00:00Z",
		  "affected": [{"package": {"ecosystem": "Go", "name": "golang.org/x/text"},
		    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.3.0"}, {"fixed": "0.3.9"}]}]}]}`,
	})
	info, err := db.ImportPaths(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 2 || info.Records != 2 || !reflect.DeepEqual(info.Ecosystems, map[string]int{"Go": 2}) {
		t.Fatalf("second import: %+v", info)
	}
	// The second import happened with nobody reading: the channel holds it.
	if got := <-updates; got.Version != 2 {
		t.Fatalf("notified of %+v", got)
	}
	if got := ids(t, db, openssl); len(got) != 0 {
		t.Fatalf("openssl matches %v after a database without it replaced the first", got)
	}
	if got := ids(t, db, text); !slices.Equal(got, []string{"GO-2022-1059", "GO-2023-1"}) {
		t.Fatalf("golang.org/x/text matches %v", got)
	}
	n := 0
	if err := st.ScanVulns(ctx, 1, "Go", "golang.org/x/text", func(string, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("version 1 still holds %d entries (%v)", n, err)
	}
	if got := testutil.CollectAndCount(reg, "berth_vulndb_import_duration_seconds"); got != 1 {
		t.Fatalf("import duration series: %d", got)
	}
	want := "# HELP berth_vulndb_records OSV records in the vulnerability database served, by ecosystem.\n# TYPE berth_vulndb_records gauge\nberth_vulndb_records{ecosystem=\"Go\"} 2\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_vulndb_records"); err != nil {
		t.Fatal(err)
	}
}

// TestImportRefusesBadInput: a corrupt zip, a record that breaks the
// schema and a file that is no database are refused, naming the file and
// the record; the database served stays, and the failed version is gone.
func TestImportRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	db, st := openDB(t, t.TempDir(), reg)
	dir, zipPath := seed(t)
	if _, err := db.ImportPaths(ctx, dir, zipPath); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	corrupt := filepath.Join(bad, "debian-all.zip")
	full, _ := os.ReadFile(zipPath)
	if err := os.WriteFile(corrupt, full[:len(full)/2], 0o644); err != nil { // cut short: no central directory
		t.Fatal(err)
	}
	writeFiles(t, bad, map[string]string{
		"records/GHSA-bad.json": `{"id": "GHSA-bad", "modified": "2024-01-01T00:00:00Z",
		  "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0", "fixed": "1.0.0"}]}]}]}`,
		"records/A.json":      seedRecords["go/GO-2022-1059.json"],
		"nomodified/B.json":   `{"id": "B-1", "affected": []}`,
		"notjson/C.json":      `{"id": `,
		"badtype/D.json":      `{"id": "D-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "RANGE", "events": [{"introduced": "0"}]}]}]}`,
		"nopackage/E.json":    `{"id": "E-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm"}}]}`,
		"notadb/readme.txt":   "hello",
		"nointroduced/F.json": `{"id": "F-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "SEMVER", "events": [{"fixed": "1.0.0"}]}]}]}`,
	})
	tests := []struct {
		path string
		want []string
	}{
		{corrupt, []string{"debian-all.zip", "not a readable zip"}},
		{filepath.Join(bad, "records"), []string{"records/GHSA-bad.json", "record GHSA-bad", "events[0] must have exactly one of"}},
		{filepath.Join(bad, "nomodified"), []string{"nomodified/B.json", "record B-1", "modified"}},
		{filepath.Join(bad, "notjson"), []string{"notjson/C.json", "not an OSV JSON record"}},
		{filepath.Join(bad, "badtype"), []string{"record D-1", `type "RANGE"`}},
		{filepath.Join(bad, "nopackage"), []string{"record E-1", "affected[0]", "ecosystem and a name"}},
		{filepath.Join(bad, "nointroduced"), []string{"record F-1", "introduced"}},
		{filepath.Join(bad, "notadb", "readme.txt"), []string{"readme.txt is not an OSV zip dump"}},
		{filepath.Join(bad, "missing"), []string{"missing", "no such file"}},
	}
	for _, tt := range tests {
		_, err := db.ImportPaths(ctx, tt.path)
		if err == nil {
			t.Errorf("import of %s succeeded", tt.path)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("import of %s: %v; want it to say %q", tt.path, err, w)
			}
		}
	}
	if _, err := db.ImportPaths(ctx, filepath.Join(bad, "badtype")); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad record's error is not ErrInvalid: %v", err)
	}
	info, err := db.Describe(ctx)
	if err != nil || info.Version != 1 || info.Records != 12 {
		t.Fatalf("after the refusals: %+v %v", info, err)
	}
	if got := ids(t, db, Package{"Debian:12", "openssl", "3.0.11-1~deb12u2"}); len(got) != 1 {
		t.Fatalf("the old database stopped serving: %v", got)
	}
	n := 0
	if err := st.ScanVulns(ctx, 2, "Go", "golang.org/x/text", func(string, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("a refused import left %d entries (%v)", n, err)
	}
	if got := testutil.ToFloat64(db.m.importErrors); got != float64(len(tests)+1) {
		t.Fatalf("import errors counted: %v", got)
	}
}

// TestImportStream: what the admin API receives. A tar (gzip-compressed)
// of JSON files and a zip dump, a zip alone, one JSON record.
func TestImportStream(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t, t.TempDir(), nil)
	_, zipPath := seed(t)
	zipBytes, _ := os.ReadFile(zipPath)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	for name, body := range seedRecords {
		add("osv/"+name, []byte(body))
	}
	add("npm-all.zip", zipBytes)
	add("osv/notes.txt", []byte("skipped"))
	tw.Close()
	gz.Close()
	info, err := db.ImportStream(ctx, "upload.tar.gz", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != 12 || info.Withdrawn != 1 || !slices.Equal(info.Sources, []string{"osv", "npm-all.zip"}) || info.Fingerprint != "" {
		t.Fatalf("tar import: %+v", info)
	}
	if got := ids(t, db, Package{"npm", "minimist", "1.2.5"}); !slices.Equal(got, []string{"GHSA-xvch-5gv4-984h"}) {
		t.Fatalf("minimist after the tar import: %v", got)
	}
	info, err = db.ImportStream(ctx, "npm-all.zip", bytes.NewReader(zipBytes))
	if err != nil || info.Records != 1 || !slices.Equal(info.Sources, []string{"npm-all.zip"}) {
		t.Fatalf("zip import: %+v %v", info, err)
	}
	info, err = db.ImportStream(ctx, "GO-2022-1059.json", strings.NewReader(seedRecords["go/GO-2022-1059.json"]))
	if err != nil || info.Records != 1 || info.Ecosystems["Go"] != 1 {
		t.Fatalf("JSON import: %+v %v", info, err)
	}
	if _, err := db.ImportStream(ctx, "junk", strings.NewReader("junk")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("junk: %v", err)
	}
}

// TestSyncPath: scanning.vulnDB is imported when nothing is, not again
// while it is unchanged, again once a file is newer than the import.
func TestSyncPath(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t, t.TempDir(), nil)
	dir, _ := seed(t)
	old := testNow.Add(-time.Hour)
	for name := range seedRecords {
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if imported, info, err := db.SyncPath(ctx, dir); err != nil || !imported || info.Version != 1 {
		t.Fatalf("first SyncPath: %v %+v %v", imported, info, err)
	}
	if imported, _, err := db.SyncPath(ctx, dir); err != nil || imported {
		t.Fatalf("SyncPath of an unchanged directory: %v %v", imported, err)
	}
	// An upload replaced it since: an older directory does not win.
	if _, err := db.ImportStream(ctx, "go.json", strings.NewReader(seedRecords["go/GO-2022-1059.json"])); err != nil {
		t.Fatal(err)
	}
	if imported, info, err := db.SyncPath(ctx, dir); err != nil || imported || info.Version != 2 {
		t.Fatalf("SyncPath of a directory older than the upload: %v %+v %v", imported, info, err)
	}
	newer := testNow.Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "go/GO-2022-1059.json"), newer, newer); err != nil {
		t.Fatal(err)
	}
	if imported, info, err := db.SyncPath(ctx, dir); err != nil || !imported || info.Version != 3 || info.Records != 11 {
		t.Fatalf("SyncPath of a directory changed since: %v %+v %v", imported, info, err)
	}
}
