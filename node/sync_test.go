package node

import (
	"net/http"
	"strings"
	"testing"

	"berth/admin"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// sync-now on the admin API runs the config's sync rule through the
// node's backend: a client's pull of a synced tag then asks the upstream
// nothing, and a tag the rule does not select stays unsynced.
func TestSyncNowThroughAdminAPI(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]
sync: [{name: nightly, upstream: a, repositories: [lib/app], tags: {regex: 'v\d+'}}]
`)
	img, err := random.Image(128, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.upA.Push(t, "lib/app", "dev", img)
	var resp admin.SyncResponse
	if st := e.adminOp("sync-now", "", &resp); st != http.StatusOK {
		t.Fatalf("sync-now: %d", st)
	}
	var desc admin.SyncResponse
	// sync-now without wait started the run; with wait it answers when the run ends.
	if st := e.syncWait(&desc); st != http.StatusOK || len(desc.Rules) != 1 || desc.Rules[0].LastRun == nil ||
		desc.Rules[0].LastRun.Images != 1 || len(desc.Rules[0].LastRun.Errors) != 0 {
		t.Fatalf("sync-now --wait: %d %+v", st, desc)
	}
	e.upA.Reset()
	if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("pull of the synced tag: %d", st)
	}
	if n := e.upA.Count("total"); n != 0 {
		t.Fatalf("the pull of a synced tag sent the upstream %d requests: %v", n, e.upA.Requests())
	}
	if _, err := e.n.store.GetTag(t.Context(), "a", "lib/app", "dev"); err == nil {
		t.Fatal("the tag dev was synced, but the rule selects v<N> only")
	}
}

func (e *reloadEnv) syncWait(out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.admin.URL+admin.Prefix+"sync-now", strings.NewReader(`{"rule":"nightly","wait":true}`))
	req.Header.Set("Content-Type", "application/json")
	return e.do(req, out)
}
