package admin_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"berth/admin"
	"berth/admin/admintest"
	"berth/vulndb/vulndbtest"
)

var goRecord = vulndbtest.Record("GO-2022-1059", "Go", "golang.org/x/text", "SEMVER", "0.3.8")

func postVulnDB(t *testing.T, n *admintest.Node, ctype, source, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.URL()+admin.Prefix+"import-vulndb?source="+source, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := n.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestVulnDBOperations(t *testing.T) {
	n := admintest.New(t)
	if st, body := n.Call("describe-vulndb", struct{}{}); st != http.StatusNotFound || !strings.Contains(string(body), admin.CodeVulnDBNotFound) ||
		!strings.Contains(string(body), "berth import-vulndb") {
		t.Fatalf("describe-vulndb before an import: %d %s", st, body)
	}
	// A form post (a web page) cannot import.
	if st, _ := postVulnDB(t, n, "text/plain", "x.json", goRecord); st != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain import: %d", st)
	}
	st, body := postVulnDB(t, n, "application/json", "go/GO-2022-1059.json", goRecord)
	var resp admin.VulnDBResponse
	if st != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil || resp.Database.Version != 1 ||
		resp.Database.Records != 1 || len(resp.Database.Sources) != 1 || resp.Database.Sources[0] != "GO-2022-1059.json" {
		t.Fatalf("import-vulndb: %d %s", st, body)
	}
	bad := strings.Replace(goRecord, `"SEMVER"`, `"SEMVERISH"`, 1)
	st, body = postVulnDB(t, n, "application/json", "bad.json", bad)
	if st != http.StatusBadRequest || !strings.Contains(body, admin.CodeInvalidParameter) || !strings.Contains(body, "bad.json") ||
		!strings.Contains(body, "record GO-2022-1059") || !strings.Contains(body, "database served is unchanged") {
		t.Fatalf("a bad record: %d %s", st, body)
	}
	var d admin.VulnDBResponse
	n.OK("describe-vulndb", struct{}{}, &d)
	if d.Database.Version != 1 || d.Database.Ecosystems["Go"] != 1 {
		t.Fatalf("describe-vulndb: %+v", d)
	}
}
