package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"berth/store"
	"berth/test/testreg"

	"go.uber.org/zap/zaptest"
)

// The peer API applies the visibility rule of the route it names: content
// stored here for someone else (a local repository's push) is answered as
// absent, from the store alone (store-only) and after asking the upstream.
func TestPeerAnswersOnlyWhatTheRouteSees(t *testing.T) {
	e := newEnv(t, envOpts{})
	peer := httptest.NewServer(e.proxy.PeerHandler(zaptest.NewLogger(t)))
	t.Cleanup(peer.Close)

	// A blob and a manifest pushed to a local repository only.
	data := testreg.Bytes(3000, 41)
	d := e.storeBlob(t, data)
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` + d + `","size":3000}}`)
	md := digestOf(body)
	b := e.store.NewBatch()
	defer b.Close()
	private := store.LocalKey("private/app")
	for _, err := range []error{
		b.PutManifest(md, &store.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body}),
		b.PutImage(private, md, store.Image{PushedAt: time.Now()}),
		b.Link(private, d),
		b.Commit(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	get := func(method, path string, storeOnly bool) int {
		t.Helper()
		req, _ := http.NewRequest(method, peer.URL+path, nil)
		if storeOnly {
			req.Header.Set(headerStoreOnly, "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (the connection dropped)", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		method, path string
		storeOnly    bool
	}{
		{http.MethodGet, "/v2/up/team/x/blobs/" + d, true},
		{http.MethodHead, "/v2/up/team/x/blobs/" + d, true},
		{http.MethodGet, "/v2/up/team/x/blobs/" + d, false},
		{http.MethodHead, "/v2/up/team/x/blobs/" + d, false},
		{http.MethodGet, "/v2/up/team/x/manifests/" + md, false},
		{http.MethodHead, "/v2/up/team/x/manifests/" + md, false},
	} {
		if st := get(tc.method, tc.path, tc.storeOnly); st != http.StatusNotFound {
			t.Errorf("%s %s (store only: %v): %d, want 404", tc.method, tc.path, tc.storeOnly, st)
		}
	}
	// The store-only answers never reached the upstream; the others did.
	if n := e.up.Count("GET manifests") + e.up.Count("HEAD manifests"); n == 0 {
		t.Errorf("the upstream was not asked for the manifest: %v", e.up.Requests())
	}
}
