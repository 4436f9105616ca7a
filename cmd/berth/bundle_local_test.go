package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// A bundle of two local images whose second would move an immutable tag
// of the importing node is refused before the first is put: neither
// appears, and the tag still points where it did.
func TestImportChecksLocalTagsFirst(t *testing.T) {
	a := startNode(t, "")
	b := startNode(t, "local: {defaultMutability: IMMUTABLE}\n")
	for _, p := range []struct {
		node *testNode
		ref  string
		seed uint64
	}{{a, "private/first:v1", 1}, {a, "private/second:v1", 2}, {b, "private/second:v1", 3}} {
		if err := crane.Push(testreg.Image(t, p.seed, 1000), p.node.host()+"/"+p.ref); err != nil {
			t.Fatal(err)
		}
	}
	held, err := crane.Digest(b.host() + "/private/second:v1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "two.tar")
	if out, err := bundleCmd(t, a, "export", "--output", file, "private/first:v1", "private/second:v1"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	out, err := bundleCmd(t, b, "import", file)
	if err == nil || !strings.Contains(err.Error()+out, "immutable") {
		t.Fatalf("import over an immutable tag: %v\n%s; want a refusal naming the immutable tag", err, out)
	}
	if code := get(t, b, "/v2/private/first/manifests/v1"); code != http.StatusNotFound {
		t.Errorf("private/first:v1 after the refused import: %d, want 404 (nothing half-imported)", code)
	}
	if d, err := crane.Digest(b.host() + "/private/second:v1"); err != nil || d != held {
		t.Errorf("private/second:v1 = %s %v, want it unmoved at %s", d, err, held)
	}
}
