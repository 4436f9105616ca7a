package node

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/audit"
)

// Login failures (registry, token endpoint, admin API) are audited with the
// user name they presented, and every admin action with its target.
func TestAuditRecordsLoginsAndAdminActions(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
`)
	e.htpasswd("alice:alice-pw")
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
auth: {enabled: true, htpasswd: DIR/htpasswd, groups: {admins: [alice]}}
`)
	e.get("/v2/", "mallory:guess")
	req, _ := http.NewRequest(http.MethodGet, e.reg.URL+"/token?service=berth&scope=repository:b/x:pull", nil)
	req.SetBasicAuth("eve", "guess")
	e.do(req, nil)
	e.adminOp("describe-repositories", "trudy:guess", nil)
	req, _ = http.NewRequest(http.MethodPost, e.admin.URL+"/admin/v1/create-repository", strings.NewReader(`{"repositoryName":"private/app"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("alice", "alice-pw")
	if st := e.do(req, nil); st != http.StatusOK {
		t.Fatalf("create-repository: %d", st)
	}
	e.n.Close() // flushes the audit log
	events := readAudit(t, filepath.Join(e.dir, "data", "audit", "audit.log"))
	want := []struct{ action, user, principal, target, result string }{
		{"GetAuthorizationToken", "mallory", "anonymous", "", "UNAUTHORIZED"},
		{"GetAuthorizationToken", "eve", "anonymous", "", "UNAUTHORIZED"},
		{"DescribeRepositories", "trudy", "anonymous", "", "UNAUTHORIZED"},
		{"CreateRepository", "", "alice", "private/app", "success"},
	}
	for _, w := range want {
		found := false
		for _, ev := range events {
			if ev.Action == w.action && ev.User == w.user && ev.Principal == w.principal &&
				(w.target == "" || ev.Target == w.target) && ev.Result == w.result {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit event %+v in %+v", w, events)
		}
	}
}

func readAudit(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20) // a line longer than the default 64 KiB must fail the test, not end the scan
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %.200q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	return out
}
