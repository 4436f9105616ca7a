package registry

import (
	"testing"

	"berth/internal/oci"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzParseManifest: no body or Content-Type makes ParseManifest panic, and
// what it accepts is a schema 2 manifest of an accepted media type whose
// descriptors have valid digests and sizes, and parses again the same
// under the media type it was given.
func FuzzParseManifest(f *testing.F) {
	img, err := random.Image(512, 2)
	if err != nil {
		f.Fatal(err)
	}
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		f.Fatal(err)
	}
	docker := mutate.MediaType(img, types.DockerManifestSchema2)
	for _, doc := range []interface{ RawManifest() ([]byte, error) }{img, idx, docker} {
		raw, err := doc.RawManifest()
		if err != nil {
			f.Fatal(err)
		}
		f.Add("", raw)
		f.Add(oci.MediaTypeImageManifest, raw)
	}
	for _, s := range []struct{ ct, body string }{
		{oci.MediaTypeImageIndex, oci.EmptyIndex},
		{oci.MediaTypeDockerList, `{"schemaVersion":2,"manifests":[{"mediaType":"` + oci.MediaTypeDockerManifest + `","size":7,"digest":"` + testSHA256 + `","platform":{"os":"linux","architecture":"amd64"}}]}`},
		{oci.MediaTypeImageManifest + "; charset=utf-8", `{"schemaVersion":2,"config":{"size":2,"digest":"` + testSHA512 + `"},"subject":{"digest":"` + testSHA256 + `"}}`},
		{"text/html", "<html></html>"},
		{"", `{"schemaVersion":2,"config":{"size":-1,"digest":"sha256:x"}}`},
		{"", `{"schemaVersion":1,"fsLayers":[]}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		doc, mt, err := ParseManifest(ct, body)
		if err != nil {
			return
		}
		if !oci.IsManifest(mt) || doc.SchemaVersion != 2 || (doc.MediaType != "" && doc.MediaType != mt) {
			t.Fatalf("ParseManifest(%q, %q) accepted %s %+v", ct, body, mt, doc)
		}
		for _, d := range doc.Refs() {
			if _, err := ParseDigest(d.Digest); err != nil || d.Size < 0 {
				t.Fatalf("ParseManifest(%q, %q) accepted descriptor %+v", ct, body, d)
			}
		}
		if _, again, err := ParseManifest(mt, body); err != nil || again != mt {
			t.Fatalf("ParseManifest(%q, %q) = %s, but under %s: %s, %v", ct, body, mt, mt, again, err)
		}
	})
}
