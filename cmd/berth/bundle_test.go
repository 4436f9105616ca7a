package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/bundle"
	"berth/node"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
	"go.uber.org/zap/zaptest"
)

// testNode is an in-process node with its registry and admin listeners.
type testNode struct {
	n          *node.Node
	reg, admin *httptest.Server
}

func startNode(t *testing.T, cfg string) *testNode {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.yaml")
	body := fmt.Sprintf("dataDir: %q\nadmin: {listen: \"127.0.0.1:0\"}\n%s", filepath.Join(dir, "data"), cfg)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := node.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), c, node.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{n: n, reg: httptest.NewServer(n.Handler()), admin: httptest.NewServer(n.AdminHandler())}
	t.Cleanup(func() { tn.reg.Close(); tn.admin.Close(); n.Close() })
	return tn
}

func (tn *testNode) host() string { return strings.TrimPrefix(tn.reg.URL, "http://") }

func bundleCmd(t *testing.T, tn *testNode, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{args[0], "--admin", tn.admin.URL}, args[1:]...), &out)
	return out.String(), err
}

// keygen makes a signing key pair, path.key and path.pub, with berth keygen.
func keygen(t *testing.T, path string) {
	t.Helper()
	if err := run(context.Background(), []string{"keygen", "--output", path}, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// A cached and a local image go from node A (online) to node B (offline)
// in a signed bundle; B then serves both with no upstream request. A
// delta carries only new blobs; a tampered bundle, a wrong key and a
// delta whose base B lacks are refused, leaving nothing behind.
func TestExportImportAcrossTheGap(t *testing.T) {
	up := testreg.Start(t)
	v1 := testreg.Image(t, 1, 3000, 4000)
	up.Push(t, "lib/app", "v1", v1)
	a := startNode(t, fmt.Sprintf("upstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	b := startNode(t, fmt.Sprintf("offline: true\nupstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	img, err := crane.Pull(a.host() + "/hub/lib/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	local := testreg.Image(t, 2, 5000)
	if err := crane.Push(local, a.host()+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	// Pull every layer through A so it holds the whole image.
	if err := crane.Save(img, "x", filepath.Join(t.TempDir(), "x.tar")); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	keygen(t, key)
	full := filepath.Join(dir, "full.tar")
	if out, err := bundleCmd(t, a, "export", "--output", full, "--sign", key+".key", "hub/lib/app:v1", "private/app:v1"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}

	// A wrong key and a tampered bundle are refused.
	other := filepath.Join(dir, "other")
	keygen(t, other)
	if _, err := bundleCmd(t, b, "import", "--verify-key", other+".pub", full); err == nil || !strings.Contains(err.Error(), "signed by key") {
		t.Fatalf("import with the wrong key: %v", err)
	}
	tampered := tamper(t, full, dir)
	if _, err := bundleCmd(t, b, "import", tampered); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("import of a tampered bundle: %v", err)
	}
	if code := get(t, b, "/v2/private/app/manifests/v1"); code != http.StatusNotFound {
		t.Fatalf("after refused imports, B answers %d for the local image", code)
	}

	// The good bundle, twice (idempotent).
	for range 2 {
		if out, err := bundleCmd(t, b, "import", "--verify-key", key+".pub", full); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	up.Reset()
	for _, ref := range []string{"/hub/lib/app:v1", "/private/app:v1"} {
		im, err := crane.Pull(b.host() + ref)
		if err != nil {
			t.Fatalf("pull %s from B: %v", ref, err)
		}
		if err := crane.Save(im, "x", filepath.Join(t.TempDir(), "x.tar")); err != nil {
			t.Fatalf("read %s's layers from B: %v", ref, err)
		}
	}
	if n := up.Count("total"); n != 0 {
		t.Fatalf("B sent the upstream %d requests: %v", n, up.Requests())
	}

	// A delta carries only the new blobs.
	newer := testreg.Image(t, 3, 6000)
	if err := crane.Push(newer, a.host()+"/private/app:v2"); err != nil {
		t.Fatal(err)
	}
	// private/base:v1 is the cached image pushed to a local repository:
	// its layers travelled in the full bundle for hub/lib/app only.
	if err := crane.Push(img, a.host()+"/private/base:v1"); err != nil {
		t.Fatal(err)
	}
	delta := filepath.Join(dir, "delta.tar")
	if out, err := bundleCmd(t, a, "export", "--output", delta, "--since", full, "hub/lib/app:v1", "private/app:v2", "private/base:v1"); err != nil {
		t.Fatalf("export --since: %v\n%s", err, out)
	}
	old, err := bundle.FileBlobs(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundle.FileBlobs(delta)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := newer.Layers()
	ld, _ := layers[0].Digest()
	if !got[ld.String()] {
		t.Fatal("the delta lacks the new layer")
	}
	for d := range got {
		if old[d] && !isManifest(t, a, d) {
			t.Errorf("the delta carries %s, which the full bundle carried", d)
		}
	}
	// A node without the base refuses the delta.
	c := startNode(t, "offline: true\nupstreams: []\n")
	if _, err := bundleCmd(t, c, "import", delta); err == nil || !strings.Contains(err.Error(), "delta") {
		t.Fatalf("a delta without its base: %v", err)
	}
	if out, err := bundleCmd(t, b, "import", delta); err != nil {
		t.Fatalf("import the delta on B: %v\n%s", err, out)
	}
	if code := get(t, b, "/v2/private/app/manifests/v2"); code != http.StatusOK {
		t.Fatalf("B after the delta: %d", code)
	}
	// The layers the delta left out are B's, held for the cached image;
	// the local repository now sees them too.
	base, err := crane.Pull(b.host() + "/private/base:v1")
	if err != nil {
		t.Fatalf("pull private/base:v1 from B: %v", err)
	}
	if err := crane.Save(base, "x", filepath.Join(t.TempDir(), "x.tar")); err != nil {
		t.Fatalf("read private/base:v1's layers from B: %v", err)
	}
}

func isManifest(t *testing.T, tn *testNode, d string) bool {
	return get(t, tn, "/v2/hub/lib/app/manifests/"+d) == http.StatusOK || get(t, tn, "/v2/private/app/manifests/"+d) == http.StatusOK
}

func get(t *testing.T, tn *testNode, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tn.reg.URL+path, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// tamper copies a bundle with one byte of its largest blob changed.
func tamper(t *testing.T, src, dir string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	var biggest int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		b, _ := io.ReadAll(tr)
		if h.Size > biggest {
			biggest = h.Size
		}
		if h.Size > 2000 && h.Size == biggest {
			b[len(b)/2] ^= 0xff
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	path := filepath.Join(dir, "tampered.tar")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecondIndexIsRefused: an index.json appended to a signed bundle,
// naming an image the signature never covered, is refused, and the image
// it names is not imported.
func TestSecondIndexIsRefused(t *testing.T) {
	up := testreg.Start(t)
	a := startNode(t, fmt.Sprintf("upstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	b := startNode(t, "offline: true\nupstreams: []\n")
	if err := crane.Push(testreg.Image(t, 4, 3000), a.host()+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	keygen(t, key)
	full := filepath.Join(dir, "full.tar")
	if out, err := bundleCmd(t, a, "export", "--output", full, "--sign", key+".key", "private/app:v1"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	var index []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		body, _ := io.ReadAll(tr)
		if h.Name == bundle.IndexFile {
			index = bytes.ReplaceAll(body, []byte("private/app:v1"), []byte("private/evil:v1"))
		}
		_ = tw.WriteHeader(h)
		_, _ = tw.Write(body)
	}
	_ = tw.WriteHeader(&tar.Header{Name: bundle.IndexFile, Mode: 0o644, Size: int64(len(index)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(index)
	_ = tw.Close()
	evil := filepath.Join(dir, "evil.tar")
	if err := os.WriteFile(evil, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bundleCmd(t, b, "import", "--verify-key", key+".pub", evil); err == nil || !strings.Contains(err.Error(), "more than one index.json") {
		t.Fatalf("import of a bundle with a second index: %v", err)
	}
	if code := get(t, b, "/v2/private/evil/manifests/v1"); code != http.StatusNotFound {
		t.Fatalf("after the refused import, B answers %d for the appended image", code)
	}
}
