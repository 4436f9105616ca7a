package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/admin"
	"berth/admin/admintest"
	"berth/vulndb/vulndbtest"
)

func osvJSON(id, name, fixed string) string {
	return vulndbtest.Record(id, "npm", name, "SEMVER", fixed)
}

func importVulnDB(t *testing.T, n *admintest.Node, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"import-vulndb", "--admin", n.URL()}, args...), &out)
	return out.String(), err
}

func TestCLIVulnDB(t *testing.T) {
	n := admintest.New(t)
	dir := t.TempDir()
	osv := filepath.Join(dir, "osv")
	if err := os.MkdirAll(filepath.Join(osv, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(osv, "npm", "GHSA-1.json"), []byte(osvJSON("GHSA-1", "minimist", "1.2.6")), 0o644)
	os.WriteFile(filepath.Join(osv, "README"), []byte("not sent"), 0o644)
	zipPath := filepath.Join(dir, "npm-all.zip")
	os.WriteFile(zipPath, vulndbtest.Zip(map[string]string{"GHSA-2": osvJSON("GHSA-2", "lodash", "4.17.21")}), 0o644)

	// A directory and a zip go as one tar.
	out, err := importVulnDB(t, n, osv, zipPath)
	var r admin.VulnDBResponse
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Database.Records != 2 || strings.Join(r.Database.Sources, ",") != "osv,npm-all.zip" {
		t.Fatalf("import-vulndb DIR ZIP: %v\n%s", err, out)
	}
	// One zip goes as it is.
	out, err = importVulnDB(t, n, "-o", "table", zipPath)
	if err != nil || !strings.Contains(out, "VERSION") || !strings.Contains(out, "npm-all.zip") || !strings.Contains(out, "npm        1") {
		t.Fatalf("import-vulndb ZIP -o table: %v\n%s", err, out)
	}
	var d admin.VulnDBResponse
	cliJSON(t, n, &d, "describe-vulndb")
	if d.Database.Version != 2 || d.Database.Records != 1 {
		t.Fatalf("describe-vulndb: %+v", d)
	}
	if out, _, err := cliRun(t, n, false, "describe-vulndb", "-o", "table"); err != nil || !strings.Contains(out, "ECOSYSTEM") {
		t.Fatalf("describe-vulndb -o table: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"id": "X-1"}`), 0o644)
	if _, err := importVulnDB(t, n, bad); err == nil || !strings.Contains(err.Error(), "bad.json") || !strings.Contains(err.Error(), "record X-1") {
		t.Fatalf("a bad record: %v", err)
	}
	if _, err := importVulnDB(t, n, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing file: %v", err)
	}
	if _, err := importVulnDB(t, n); err == nil {
		t.Fatal("import-vulndb without a file succeeded")
	}
}
