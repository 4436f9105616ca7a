package upstream

import (
	"encoding/json"
	"errors"
	"testing"

	"berth/internal/oci"
	"berth/registry"
)

// FuzzCheckManifest: no answer makes the check of an upstream's manifest
// panic; what it refuses is ErrInvalidManifest, and what it accepts is a
// manifest registry.ParseManifest accepts under the same media type, or a
// labelled schema 1 manifest with schemaVersion 1.
func FuzzCheckManifest(f *testing.F) {
	u := &Upstream{Rule: Rule{Name: "fuzz"}}
	good := `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageManifest + `","config":` + ctConfig + `,"layers":[]}`
	for _, s := range []struct {
		mt, body string
		index    bool
	}{
		{oci.MediaTypeImageManifest, good, false},
		{oci.MediaTypeImageIndex, oci.EmptyIndex, true},
		{oci.MediaTypeDockerSchema1Signed, `{"schemaVersion":1,"name":"a","tag":"v1","fsLayers":[{"blobSum":"sha256:` +
			"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" + `"}],"signatures":[]}`, false},
		{oci.MediaTypeDockerSchema1, `{"schemaVersion":2}`, false},
		{"text/html", "<html></html>", false},
		{oci.MediaTypeImageManifest, `{"token":"t"}`, true},
	} {
		f.Add(s.mt, []byte(s.body), s.index)
	}
	f.Fuzz(func(t *testing.T, mt string, body []byte, index bool) {
		err := u.checkManifest("manifest fuzz:v1", mt, body, index)
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("checkManifest(%q, %q): %v is not ErrInvalidManifest", mt, body, err)
			}
			return
		}
		if oci.IsSchema1(mt) {
			var m struct{ SchemaVersion int }
			if json.Unmarshal(body, &m) != nil || m.SchemaVersion != 1 || index {
				t.Fatalf("checkManifest(%q, %q, %v) accepted it as schema 1", mt, body, index)
			}
			return
		}
		_, got, perr := registry.ParseManifest(mt, body)
		if perr != nil || got != mt || (index && !oci.IsIndex(got)) {
			t.Fatalf("checkManifest(%q, %q, %v) accepted what ParseManifest says is %s, %v", mt, body, index, got, perr)
		}
	})
}
