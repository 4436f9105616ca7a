package reclaim

import (
	"encoding/json"
	"slices"

	"berth/registry"
)

// Manifest media types: the ones a push may use, and the ones a walk
// follows as child manifests rather than blobs.
const (
	MediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

var manifestTypes = []string{MediaOCIManifest, MediaOCIIndex, MediaDockerManifest, MediaDockerList}

// IsManifestType reports whether mt is the media type of a manifest or
// index (a descriptor of that type names a manifest, not a blob).
func IsManifestType(mt string) bool { return slices.Contains(manifestTypes, mt) }

// manifest is the part of a stored manifest or index the deleters read.
type manifest struct {
	ArtifactType string                `json:"artifactType"`
	Config       *registry.Descriptor  `json:"config"`
	Layers       []registry.Descriptor `json:"layers"`
	Manifests    []registry.Descriptor `json:"manifests"`
	Subject      *registry.Descriptor  `json:"subject"`
}

// readManifest parses a stored manifest; ok is false for one that is not
// JSON (it references nothing then).
func readManifest(body []byte) (m manifest, ok bool) {
	return m, json.Unmarshal(body, &m) == nil
}

// edges splits what a manifest references into blobs and child manifests.
func (m *manifest) edges() (blobs, children []string) {
	refs := slices.Clone(m.Layers)
	if m.Config != nil {
		refs = append(refs, *m.Config)
	}
	for _, d := range append(refs, m.Manifests...) {
		if IsManifestType(d.MediaType) {
			children = append(children, d.Digest.String())
		} else {
			blobs = append(blobs, d.Digest.String())
		}
	}
	return blobs, children
}

// artifactType is the manifest's artifactType, or for an image manifest
// without one its config's media type (the spec's rule for referrers).
func (m *manifest) artifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}
