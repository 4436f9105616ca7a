package node

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// offline: true, at the top level or on one rule, is put in force by a
// reload: the upstream is not asked again until a reload turns it off.
func TestReloadSwitchesOffline(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A, ttl: 1ns}]
`)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.upA.Push(t, "lib/app", "v2", img)
	if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("pull through a: %d", st)
	}
	for _, cfg := range []string{
		"offline: true\nupstreams: [{name: a, prefix: a, registry: a.example, url: UP_A, ttl: 1ns}]\n",
		"upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A, ttl: 1ns, offline: true}]\n",
	} {
		e.apply(cfg)
		e.upA.Reset()
		if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
			t.Fatalf("offline, the cached tag (past its TTL) answers %d", st)
		}
		if st := e.get("/v2/a/lib/app/manifests/v2", ""); st != http.StatusNotFound {
			t.Fatalf("offline, a tag not held answers %d, want 404", st)
		}
		if n := e.upA.Count("total"); n != 0 {
			t.Fatalf("offline (%q), the upstream saw %d requests: %v", cfg, n, e.upA.Requests())
		}
	}
	e.apply("upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A, ttl: 1ns}]\n")
	if st := e.get("/v2/a/lib/app/manifests/v2", ""); st != http.StatusOK {
		t.Fatalf("online again, the new tag answers %d", st)
	}
}
