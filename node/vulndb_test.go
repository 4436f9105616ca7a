package node

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/vulndb"
	"berth/vulndb/vulndbtest"
)

// osvRecord is an OSV record naming a Go module version as vulnerable.
func osvRecord(id, module, fixed string) string {
	return vulndbtest.Record(id, "Go", module, "SEMVER", fixed)
}

// waitVulnDB waits for the node's database to reach version (the import
// runs in the background): through the database's own notifications.
func waitVulnDB(t *testing.T, db *vulndb.DB, updates <-chan vulndb.Info, version uint64) vulndb.Info {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		info, err := db.Describe(context.Background())
		if err == nil && info.Version >= version {
			return info
		}
		if err != nil && !errors.Is(err, vulndb.ErrNoDatabase) {
			t.Fatal(err)
		}
		select {
		case <-updates:
		case <-timeout:
			t.Fatalf("the vulnerability database did not reach version %d: %+v %v", version, info, err)
		}
	}
}

func matchIDs(t *testing.T, db *vulndb.DB, name, version string) []string {
	t.Helper()
	vs, err := db.Match(context.Background(), vulndb.Package{Ecosystem: "Go", Name: name, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	return ids
}

// TestVulnDBImportedAtStartAndOnReload: scanning.vulnDB is imported at
// start, and again on SIGHUP once its files changed.
func TestVulnDBImportedAtStartAndOnReload(t *testing.T) {
	osv := t.TempDir()
	if err := os.WriteFile(filepath.Join(osv, "GO-1.json"), []byte(osvRecord("GO-1", "golang.org/x/text", "0.3.8")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := "scanning: {vulnDB: " + osv + "}\n"
	e := newReloadEnv(t, cfg)
	db := e.n.VulnDB()
	updates := db.Subscribe()
	info := waitVulnDB(t, db, updates, 1)
	if info.Records != 1 || info.Ecosystems["Go"] != 1 {
		t.Fatalf("the start's import: %+v", info)
	}
	if ids := matchIDs(t, db, "golang.org/x/text", "0.3.7"); len(ids) != 1 || ids[0] != "GO-1" {
		t.Fatalf("Match after the start's import: %v", ids)
	}

	// A new file, newer than the import: the reload imports the directory.
	p := filepath.Join(osv, "GO-2.json")
	if err := os.WriteFile(p, []byte(osvRecord("GO-2", "golang.org/x/net", "0.7.0")), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	e.apply(cfg)
	info = waitVulnDB(t, db, updates, 2)
	if info.Records != 2 {
		t.Fatalf("the reload's import: %+v", info)
	}
	if ids := matchIDs(t, db, "golang.org/x/net", "0.6.0"); len(ids) != 1 || ids[0] != "GO-2" {
		t.Fatalf("Match after the reload's import: %v", ids)
	}
}

// TestVulnDBAdminImport: an upload through the node's admin listener
// replaces the database, a corrupt one is refused naming the file with the
// database served unchanged, and both are audited.
func TestVulnDBAdminImport(t *testing.T) {
	e := newReloadEnv(t, "")
	dump := vulndbtest.Zip(map[string]string{"GO-1": osvRecord("GO-1", "golang.org/x/text", "0.3.8")})
	post := func(body []byte, source string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.admin.URL+admin.Prefix+"import-vulndb?source="+source, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/zip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if st, body := post(dump, "go-all.zip"); st != http.StatusOK || !strings.Contains(body, `"go-all.zip"`) {
		t.Fatalf("import-vulndb: %d %s", st, body)
	}
	corrupt := append([]byte("PK\x03\x04"), bytes.Repeat([]byte{7}, 100)...)
	if st, body := post(corrupt, "broken.zip"); st != http.StatusBadRequest || !strings.Contains(body, "broken.zip") ||
		!strings.Contains(body, admin.CodeInvalidParameter) {
		t.Fatalf("a corrupt zip: %d %s", st, body)
	}
	var out admin.VulnDBResponse
	if st := e.adminOp("describe-vulndb", "", &out); st != http.StatusOK || out.Database.Version != 1 || out.Database.Records != 1 {
		t.Fatalf("describe-vulndb after the refusal: %d %+v", st, out)
	}
	e.n.Close() // flushes the audit log
	var results []string
	for _, ev := range readAudit(t, filepath.Join(e.dir, "data", "audit", "audit.log")) {
		if ev.Action == "ImportVulndb" {
			results = append(results, ev.Target+" "+ev.Result)
		}
	}
	if strings.Join(results, ",") != "go-all.zip success,broken.zip failure" {
		t.Fatalf("audit of import-vulndb: %v", results)
	}
}
