package node

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// A rule whose first endpoint is a partial mirror pulls through it what it
// has and from the origin what it lacks, and /metrics shows each
// endpoint's series.
func TestPullThroughFailover(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, urls: [UP_A, UP_B]}]
`)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.upB.Push(t, "lib/other", "v1", img)
	e.upA.Reset()
	e.upB.Reset()
	if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("pull of what the mirror has: %d", st)
	}
	if n := e.upB.Count("GET manifests"); n != 0 {
		t.Fatalf("the origin saw %d manifest GETs for what the mirror has", n)
	}
	if st := e.get("/v2/a/lib/other/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("pull of what only the origin has: %d", st)
	}
	if e.upA.Count("GET manifests") != 2 || e.upB.Count("GET manifests") != 1 {
		t.Fatalf("manifest GETs: mirror %d (want 2), origin %d (want 1)", e.upA.Count("GET manifests"), e.upB.Count("GET manifests"))
	}
	resp, err := http.Get(e.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, up := range []string{e.upA.URL, e.upB.URL} {
		want := fmt.Sprintf(`berth_upstream_endpoint_up{endpoint=%q,upstream="a"} 1`, up)
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in /metrics", want)
		}
	}
}
