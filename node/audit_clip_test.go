package node

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"berth/admin"
	"berth/registry"
)

// The admin API's audit events keep at most registry.Clip of what a
// client chose: the action, made of the request's path (audited before
// the admin guard, so anyone who reaches the listener writes one), and,
// with auth off, the principal, the Basic user name as presented.
func TestAdminAuditKeepsBoundedClientText(t *testing.T) {
	const upstreams = "upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]\n"
	long := strings.Repeat("a", 256<<10)
	check := func(e *reloadEnv, st int) {
		t.Helper()
		e.n.Close()
		events := readAudit(t, filepath.Join(e.dir, "data", "audit", "audit.log"))
		if len(events) == 0 {
			t.Fatalf("status %d: no audit event", st)
		}
		for _, ev := range events {
			if len(ev.Action) > 2*registry.MaxClip || len(ev.Principal) > 2*registry.MaxClip {
				t.Errorf("status %d: an event keeps an action of %d bytes and a principal of %d", st, len(ev.Action), len(ev.Principal))
			}
		}
	}

	e := newReloadEnv(t, upstreams)
	e.htpasswd("alice:alice-pw")
	e.apply(upstreams + "auth: {enabled: true, htpasswd: DIR/htpasswd, groups: {admins: [alice]}}\n")
	req, err := http.NewRequest(http.MethodPost, e.admin.URL+admin.Prefix+long, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	check(e, e.do(req, nil))

	e = newReloadEnv(t, upstreams) // auth off: the admin API takes anyone
	check(e, e.adminOp("describe-repositories", long+":pw", nil))
}
