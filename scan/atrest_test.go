package scan

import (
	"bytes"
	"crypto/rand"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/scan/scantest"
	"berth/store"
)

// blobFilesHolding lists the files under dir/blobs whose bytes hold s.
func blobFilesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	return filesHolding(t, filepath.Join(dir, "blobs"), s)
}

// filesHolding lists the files under dir whose bytes hold s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// With encryption at rest (scope local), the SBOM and the scan record of
// a local image, which list every package in it, are encrypted on disk
// as the image is, and read back whole; a cached image's SBOM is cached content, in the clear
// under scope local.
func TestScanOfALocalImageIsEncryptedAtRest(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	dir := t.TempDir()
	e := newEnvStore(t, dir, store.Options{Encryption: &store.Encryption{Key: key, KeyFile: "k"}}, nil)
	e.importDB(t, scantest.Records)
	dg := e.put(t, "private/app", scantest.Vulnerable(t, goBinary(t)))
	r := e.scan(t, "private/app", dg)
	if r.Status != StatusComplete || r.SBOM == "" {
		t.Fatalf("scan: %s %q, SBOM %q", r.Status, r.Description, r.SBOM)
	}
	if files := blobFilesHolding(t, dir, `"spdxVersion"`); len(files) != 0 {
		t.Fatalf("the SBOM of a local image is in the clear on disk: %v", files)
	}
	// Its scan record (packages, findings) is sealed in pebble: no file of
	// the store (pebble's log included) holds a path of a package.
	if files := filesHolding(t, dir, "app/package-lock.json"); len(files) != 0 {
		t.Fatalf("a local image's package paths are in the clear on disk: %v", files)
	}
	f, _, err := e.st.OpenBlob(e.ctx, r.SBOM)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(f)
	f.Close()
	if err != nil || !strings.Contains(string(doc), `"spdxVersion":"SPDX-2.3"`) || !strings.Contains(string(doc), "lodash") {
		t.Fatalf("the SBOM read back: %v %.200s", err, doc)
	}

	// The same scan of a cached repository's image writes a cached blob.
	cached := store.CachedKey("hub", "lib/app")
	b := e.st.NewBatch()
	defer b.Close()
	alpine := e.put(t, "private/alpine", scantest.Alpine(t))
	m, err := e.st.GetManifest(e.ctx, alpine)
	must(t, err)
	must(t, b.PutImage(cached, alpine, store.Image{MediaType: m.MediaType}))
	must(t, b.Commit())
	if !e.s.Enqueue(cached, alpine, "test") {
		t.Fatal("queue full")
	}
	must(t, e.s.WaitIdle(e.ctx))
	if files := blobFilesHolding(t, dir, `"spdxVersion"`); len(files) != 1 {
		t.Fatalf("files holding a cached image's SBOM in the clear: %v, want its one blob (scope local)", files)
	}
}
