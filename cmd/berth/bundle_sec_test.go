package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/bundle"
	"berth/internal/oci"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// forgedBundle writes a bundle that carries no blob: only an index.json
// naming digest d (a manifest of media type mt) under each route.
func forgedBundle(t *testing.T, d, mt string, size int64, routes ...string) string {
	t.Helper()
	x := bundle.Index{SchemaVersion: 2, MediaType: oci.MediaTypeImageIndex}
	for _, r := range routes {
		x.Manifests = append(x.Manifests, oci.Descriptor{MediaType: mt, Digest: d, Size: size,
			Annotations: map[string]string{bundle.AnnotationRoute: r}})
	}
	index, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := bundle.NewWriter(&buf, index, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "forged.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A bundle that names the digest of a private image but carries none of
// its content publishes nothing: not on a cached route, not in another
// local repository, and no upstream request is made.
func TestImportCannotLiftPrivateContent(t *testing.T) {
	up := testreg.Start(t)
	n := startNode(t, fmt.Sprintf("offline: true\nupstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	secret := testreg.Image(t, 7, 3000)
	if err := crane.Push(secret, n.host()+"/private/secret:v1"); err != nil {
		t.Fatal(err)
	}
	d, _ := secret.Digest()
	mt, _ := secret.MediaType()
	size, _ := secret.Size()
	for _, routes := range [][]string{{"hub/x/y:stolen"}, {"private/other:stolen"}, {"hub/x/y:stolen", "private/other:stolen"}} {
		path := forgedBundle(t, d.String(), string(mt), size, routes...)
		if _, err := bundleCmd(t, n, "import", path); err == nil || !strings.Contains(err.Error(), "does not carry") {
			t.Fatalf("import of %v naming a private digest: %v", routes, err)
		}
	}
	for _, p := range []string{"/v2/hub/x/y/manifests/stolen", "/v2/private/other/manifests/stolen", "/v2/hub/x/y/manifests/" + d.String()} {
		if code := get(t, n, p); code != http.StatusNotFound {
			t.Errorf("GET %s after the forged import: %d", p, code)
		}
	}
	if c := up.Count("total"); c != 0 {
		t.Fatalf("the node sent the upstream %d requests: %v", c, up.Requests())
	}
	// The image's own repository may be named again: it sees the content.
	path := forgedBundle(t, d.String(), string(mt), size, "private/secret:again")
	if out, err := bundleCmd(t, n, "import", path); err != nil {
		t.Fatalf("re-tagging within the repository that holds the image: %v\n%s", err, out)
	}
}

// Routes with names or tags outside the registry's grammar are refused.
func TestImportRefusesInvalidRoutes(t *testing.T) {
	n := startNode(t, "offline: true\nupstreams: []\n")
	d := "sha256:" + strings.Repeat("a", 64)
	for _, r := range []string{"private/app:~referrers~x", "private/App:v1", "private/a\x00b:v1", "private/app@sha256:zz"} {
		path := forgedBundle(t, d, oci.MediaTypeImageManifest, 10, r)
		if _, err := bundleCmd(t, n, "import", path); err == nil || !strings.Contains(err.Error(), "valid") {
			t.Errorf("import of route %q: %v", r, err)
		}
	}
}

// With bundles.verifyKeys the node takes only bundles signed by one of
// its keys, whatever key the client sends.
func TestImportSignedOnly(t *testing.T) {
	dir := t.TempDir()
	good, other := filepath.Join(dir, "good"), filepath.Join(dir, "other")
	keygen(t, good)
	keygen(t, other)
	a := startNode(t, "upstreams: []\n")
	if err := crane.Push(testreg.Image(t, 11, 2000), a.host()+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, fmt.Sprintf("offline: true\nupstreams: []\nbundles: {verifyKeys: [%q]}\n", good+".pub"))
	bundles := map[string]string{}
	for name, args := range map[string][]string{"unsigned": nil, "other": {"--sign", other + ".key"}, "good": {"--sign", good + ".key"}} {
		bundles[name] = filepath.Join(dir, name+".tar")
		args = append([]string{"export", "--output", bundles[name]}, append(args, "private/app:v1")...)
		if out, err := bundleCmd(t, a, args...); err != nil {
			t.Fatalf("export %s: %v\n%s", name, err, out)
		}
	}
	if _, err := bundleCmd(t, b, "import", bundles["unsigned"]); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("an unsigned bundle: %v", err)
	}
	if _, err := bundleCmd(t, b, "import", "--verify-key", other+".pub", bundles["other"]); err == nil || !strings.Contains(err.Error(), "signed by key") {
		t.Fatalf("a bundle signed by another key, that key sent by the client: %v", err)
	}
	if code := get(t, b, "/v2/private/app/manifests/v1"); code != http.StatusNotFound {
		t.Fatalf("after refused imports: %d", code)
	}
	if out, err := bundleCmd(t, b, "import", bundles["good"]); err != nil {
		t.Fatalf("a bundle signed by the node's key: %v\n%s", err, out)
	}
	if code := get(t, b, "/v2/private/app/manifests/v1"); code != http.StatusOK {
		t.Fatalf("after the import: %d", code)
	}
}
