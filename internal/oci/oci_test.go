package oci

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestMediaTypes(t *testing.T) {
	tests := []struct {
		mt               string
		manifest, index  bool
		nonDistributable bool
	}{
		{mt: MediaTypeImageManifest, manifest: true},
		{mt: MediaTypeImageIndex, manifest: true, index: true},
		{mt: MediaTypeDockerManifest, manifest: true},
		{mt: MediaTypeDockerList, manifest: true, index: true},
		{mt: "application/vnd.oci.image.config.v1+json"},
		{mt: "application/vnd.oci.image.layer.v1.tar+gzip"},
		{mt: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", nonDistributable: true},
		{mt: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", nonDistributable: true},
		{mt: "application/json"},
		{mt: ""},
	}
	for _, tt := range tests {
		if got := IsManifest(tt.mt); got != tt.manifest {
			t.Errorf("IsManifest(%q) = %v", tt.mt, got)
		}
		if got := IsIndex(tt.mt); got != tt.index {
			t.Errorf("IsIndex(%q) = %v", tt.mt, got)
		}
		if got := NonDistributable(tt.mt); got != tt.nonDistributable {
			t.Errorf("NonDistributable(%q) = %v", tt.mt, got)
		}
		if accepted := slices.Contains(strings.Split(AcceptManifests, ", "), tt.mt); accepted != tt.manifest {
			t.Errorf("AcceptManifests %q has %q: %v", AcceptManifests, tt.mt, accepted)
		}
	}
}

func TestEmptyIndex(t *testing.T) {
	var m Manifest
	if err := json.Unmarshal([]byte(EmptyIndex), &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != MediaTypeImageIndex || m.Manifests == nil || len(m.Manifests) != 0 {
		t.Errorf("EmptyIndex = %+v", m)
	}
}

func TestManifestRefs(t *testing.T) {
	body := `{"schemaVersion":2,"mediaType":"` + MediaTypeImageManifest + `",
		"config":{"mediaType":"application/vnd.example.config+json","digest":"sha256:c","size":2},
		"layers":[{"mediaType":"l","digest":"sha256:l1","size":1},{"mediaType":"l","digest":"sha256:l2","size":1}],
		"subject":{"mediaType":"` + MediaTypeImageManifest + `","digest":"sha256:s","size":3}}`
	var m Manifest
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range m.Refs() {
		got = append(got, d.Digest)
	}
	if want := []string{"sha256:c", "sha256:l1", "sha256:l2"}; !slices.Equal(got, want) {
		t.Errorf("Refs = %v, want %v (the subject is not a reference)", got, want)
	}
	if got := m.ReferrerType(); got != "application/vnd.example.config+json" {
		t.Errorf("ReferrerType without artifactType = %q, want the config's type", got)
	}
	m.ArtifactType = "application/vnd.example.sbom"
	if got := m.ReferrerType(); got != m.ArtifactType {
		t.Errorf("ReferrerType = %q, want the artifactType", got)
	}
	idx := Manifest{Manifests: []Descriptor{{Digest: "sha256:a", Platform: &Platform{OS: "linux", Architecture: "amd64"}}}}
	if refs := idx.Refs(); len(refs) != 1 || refs[0].Platform.Architecture != "amd64" || idx.ReferrerType() != "" {
		t.Errorf("index Refs = %+v, ReferrerType %q", refs, idx.ReferrerType())
	}
}
