package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"berth/test/testreg"
)

// TestHostNamedRoute pulls with crane by the upstream registry's host name
// as the first path component (berth:port/upstream.test/team/app:v1, as
// Docker-in-Docker and clients without ns name a mirrored registry): it
// routes to the rule with that registry, past the default rule, and is
// the repository a pull with ns reaches (nothing fetched twice).
func TestHostNamedRoute(t *testing.T) {
	t.Parallel()
	up, other := testreg.Start(t), testreg.Start(t)
	img := testreg.Image(t, 23, 4096, 8192)
	want := up.Push(t, "team/app", "v1", img).String()
	up.Reset()
	b := StartBerth(t, "", "upstreams:\n"+
		upstreamConfig("hub", "", "docker.io", other.URL, true, "")+
		upstreamConfig("in", "", "upstream.test", up.URL, false, ""))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pulled, err := crane.Pull(b.Addr+"/upstream.test/team/app:v1", crane.Insecure, crane.WithContext(ctx))
	if err != nil {
		t.Fatalf("crane pull by host name: %v", err)
	}
	got, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		t.Fatalf("pulled %s, want %s", got, want)
	}
	if err := crane.Save(pulled, "app", t.TempDir()+"/app.tar"); err != nil {
		t.Fatalf("reading every blob of the host-named pull: %v", err)
	}
	if n := other.Count("total"); n != 0 {
		t.Errorf("the default rule's upstream was asked: %v", other.Requests())
	}
	assertOneGETPerBlob(t, "host-named pull", up, "team/app", blobDigests(t, img))

	// The same repository by ns: served from what the host-named pull cached.
	up.Reset()
	resp, err := b.Do(ctx, http.MethodGet, "/v2/team/app/blobs/"+blobDigests(t, img)[1]+"?ns=upstream.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || up.Count("GET blobs") != 0 {
		t.Errorf("blob by ns after the host-named pull: status %d, upstream blob GETs %d (want 200, 0)",
			resp.StatusCode, up.Count("GET blobs"))
	}
}
