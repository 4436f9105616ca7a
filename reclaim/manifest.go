package reclaim

import (
	"encoding/json"

	"berth/internal/oci"
)

// readManifest parses a stored manifest; ok is false for one that is not
// JSON (it references nothing then).
func readManifest(body []byte) (m oci.Manifest, ok bool) {
	return m, json.Unmarshal(body, &m) == nil
}

// split splits what a manifest references into blobs and child manifests.
func split(m *oci.Manifest) (blobs, children []string) {
	for _, d := range m.Refs() {
		if oci.IsManifest(d.MediaType) {
			children = append(children, d.Digest)
		} else {
			blobs = append(blobs, d.Digest)
		}
	}
	return blobs, children
}
