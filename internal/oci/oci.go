// Package oci holds the facts of the OCI image spec and Docker schema 2
// that several of Berth's packages share: the manifest media types Berth
// stores and serves, the size limit of a manifest, and the parts of a
// manifest or index Berth reads.
package oci

import "strings"

// Manifest media types: the ones a push may use, an upstream is asked for,
// and a walk follows as child manifests rather than blobs.
const (
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// Docker schema 1 manifests: never pushed or asked for. An upstream that
// answers with one anyway (a registry too old for schema 2) is passed
// through as it is, after a check of its shape.
const (
	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// IsSchema1 reports whether mt is a Docker schema 1 manifest type.
func IsSchema1(mt string) bool {
	return mt == MediaTypeDockerSchema1 || mt == MediaTypeDockerSchema1Signed
}

// AcceptManifests is the Accept header that asks a registry for any
// manifest type Berth knows, indexes first.
const AcceptManifests = MediaTypeImageIndex + ", " + MediaTypeImageManifest + ", " +
	MediaTypeDockerList + ", " + MediaTypeDockerManifest

// MaxManifestBytes bounds a manifest: a push beyond it is refused, and a
// manifest read from an upstream or a peer is cut there.
const MaxManifestBytes = 4 << 20

// EmptyIndex is an image index with no entries: the referrers of a
// manifest that has none.
const EmptyIndex = `{"schemaVersion":2,"mediaType":"` + MediaTypeImageIndex + `","manifests":[]}`

// IsManifest reports whether mt is the media type of a manifest or index
// (a descriptor of that type names a manifest, not a blob).
func IsManifest(mt string) bool {
	switch mt {
	case MediaTypeImageManifest, MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// IsIndex reports whether mt is the media type of an index (a list of
// manifests, one per platform).
func IsIndex(mt string) bool { return mt == MediaTypeImageIndex || mt == MediaTypeDockerList }

// NonDistributable reports whether a layer of type mt is not pushed to
// registries; a manifest may name it without the blob being present.
func NonDistributable(mt string) bool {
	return strings.Contains(mt, ".nondistributable.") || strings.Contains(mt, ".foreign.")
}

// Descriptor is the part of a descriptor Berth reads.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Data         string            `json:"data,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

// Platform is the platform of an index entry.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// Manifest is the part of an image manifest or an index Berth reads; one
// type for both, so that a document can be checked for fields its media
// type does not allow.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *Descriptor       `json:"config,omitempty"`
	Layers        []Descriptor      `json:"layers,omitempty"`
	Manifests     []Descriptor      `json:"manifests,omitempty"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Refs returns what the manifest references: config, layers, children.
func (m *Manifest) Refs() []Descriptor {
	var out []Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	return append(out, m.Manifests...)
}

// ReferrerType is the manifest's artifactType, or for an image manifest without
// one its config's media type (the spec's rule for referrers).
func (m *Manifest) ReferrerType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}
