package node

import (
	"net/http"
	"strings"
	"testing"

	"berth/admin"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// pin-image on the admin API pins a cached image where capacity eviction
// asks (Node.pinned), and unpin-image releases it.
func TestPinImageReachesEviction(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]
`)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := e.upA.Push(t, "lib/app", "v1", img).String()
	if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("pull: %d", st)
	}
	if e.n.pinned("a", "lib/app", d) {
		t.Fatal("pinned before pin-image")
	}
	pin := func(verb string) {
		t.Helper()
		body := `{"repositoryName":"a/lib/app","imageId":{"imageTag":"v1"}}`
		req, _ := http.NewRequest(http.MethodPost, e.admin.URL+admin.Prefix+verb, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var resp admin.PinImageResponse
		if st := e.do(req, &resp); st != http.StatusOK || resp.ImageDigest != d {
			t.Fatalf("%s: %d %+v", verb, st, resp)
		}
	}
	pin("pin-image")
	if !e.n.pinned("a", "lib/app", d) {
		t.Fatal("not pinned after pin-image")
	}
	pin("unpin-image")
	if e.n.pinned("a", "lib/app", d) {
		t.Fatal("still pinned after unpin-image")
	}
}
