package node

import (
	"net/http"
	"testing"
)

// TestReloadTagPolicies: tagPolicies written to the config file and
// reloaded apply to the next pull: a tag kept for the rule's 24h is asked
// for with a HEAD on every pull once a policy gives it ttl 0s.
func TestReloadTagPolicies(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]
`)
	pull := func() {
		t.Helper()
		e.upA.Reset()
		if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
			t.Fatalf("pull: %d", st)
		}
	}
	pull()
	pull()
	if n := e.upA.Count("HEAD manifests") + e.upA.Count("GET manifests"); n != 0 {
		t.Fatalf("within the rule's ttl the upstream saw %d manifest requests", n)
	}
	e.apply(`upstreams:
  - name: a
    prefix: a
    registry: a.example
    url: UP_A
    tagPolicies: [{tags: ["v*"], ttl: 0s}]
`)
	pull()
	if h, g := e.upA.Count("HEAD manifests"), e.upA.Count("GET manifests"); h != 1 || g != 0 {
		t.Fatalf("after the reload: %d HEADs and %d GETs, want one HEAD", h, g)
	}
}
