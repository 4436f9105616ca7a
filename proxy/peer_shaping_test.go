package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"berth/registry"
	"berth/store"
	"berth/test/testreg"

	"go.uber.org/zap/zaptest"
)

// A peer reading a blob counts against the serving node's serveBandwidth
// (the shaper the node hands the peer API), not against any WAN cap: the
// bytes arrive whole, from the store, and the shaper records the wait.
func TestPeerStreamsCountAgainstServeBandwidth(t *testing.T) {
	e := newEnv(t, envOpts{})
	data := testreg.Bytes(48<<10, 43)
	d := e.storeBlob(t, data)
	b := e.store.NewBatch()
	defer b.Close()
	if err := b.LinkOrigin(store.Origin{Repo: store.CachedKey("up", "team/x")}, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	sh := registry.NewShaper(func() registry.ShapeLimits { return registry.ShapeLimits{BytesPerSecond: 32 << 10} })
	peer := httptest.NewServer(e.proxy.PeerHandler(zaptest.NewLogger(t), registry.WithShaper(sh)))
	t.Cleanup(peer.Close)

	resp, err := http.Get(peer.URL + "/v2/up/team/x/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("peer GET: %d, %d bytes, %v; want 200 and the blob's %d bytes", resp.StatusCode, len(got), err, len(data))
	}
	if sh.Throttled() <= 0 {
		t.Fatal("the peer's stream did not wait for the serving node's serveBandwidth")
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("a stored blob served to a peer reached the upstream %d times: %v", n, e.up.Requests())
	}
}
