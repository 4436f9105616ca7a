package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/admin"
	"berth/vulndb/vulndbtest"
)

// TestVulnDBOnSIGHUPAndUpload: a running berth imports scanning.vulnDB at
// start and again on SIGHUP once it changed; berth import-vulndb replaces
// it through the admin API; a restart keeps the upload, newer than the
// directory.
func TestVulnDBOnSIGHUPAndUpload(t *testing.T) {
	osv := t.TempDir()
	if err := os.Mkdir(filepath.Join(osv, "go"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(osv, "go", "GO-1.json"), vulndbtest.Record("GO-1", "Go", "golang.org/x/text", "SEMVER", "0.3.8"))
	b := StartBerth(t, "", "scanning:\n  vulnDB: "+osv+"\n")
	imports := func(n int) func(string) bool {
		return func(log string) bool { return strings.Count(log, "vulnerability database imported") >= n }
	}
	b.WaitLog("the start's import", 30*time.Second, imports(1))
	var d admin.VulnDBResponse
	berthCLI(t, b, &d, "describe-vulndb")
	if d.Database.Version != 1 || d.Database.Records != 1 {
		t.Fatalf("after the start: %+v", d.Database)
	}

	p := filepath.Join(osv, "go", "GO-2.json")
	writeFile(t, p, vulndbtest.Record("GO-2", "Go", "golang.org/x/net", "SEMVER", "0.7.0"))
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	b.cmd.Process.Signal(syscall.SIGHUP)
	b.WaitLog("the reload's import", 30*time.Second, imports(2))
	berthCLI(t, b, &d, "describe-vulndb")
	if d.Database.Version != 2 || d.Database.Records != 2 {
		t.Fatalf("after SIGHUP: %+v", d.Database)
	}

	// The directory's files are dated before the upload below.
	earlier := time.Now().Add(-time.Hour)
	for _, f := range []string{p, filepath.Join(osv, "go", "GO-1.json")} {
		if err := os.Chtimes(f, earlier, earlier); err != nil {
			t.Fatal(err)
		}
	}
	zipPath := filepath.Join(t.TempDir(), "npm-all.zip")
	if err := os.WriteFile(zipPath, vulndbtest.Zip(map[string]string{
		"GHSA-1": vulndbtest.Record("GHSA-1", "npm", "minimist", "SEMVER", "1.2.6"),
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "import-vulndb", "--admin", b.AdminURL, "-o", "table", zipPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "npm-all.zip") {
		t.Fatalf("berth import-vulndb: %v\n%s", err, out)
	}

	b.Restart()
	b.WaitLog("the start's check", 30*time.Second, func(log string) bool {
		return strings.Contains(log, "older than the vulnerability database served")
	})
	berthCLI(t, b, &d, "describe-vulndb")
	if d.Database.Version != 3 || d.Database.Ecosystems["npm"] != 1 || d.Database.Records != 1 {
		t.Fatalf("after a restart: %+v", d.Database)
	}
}
