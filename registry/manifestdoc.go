package registry

import (
	"encoding/json"
	"mime"

	"berth/errdefs"
	"berth/internal/oci"
)

func manifestInvalid(format string, args ...any) error {
	return errdefs.New(errdefs.ErrManifestInvalid, format, args...)
}

// ParseManifest checks that body is a manifest or index of a media type
// Berth accepts (internal/oci) and returns it with that media type: valid
// JSON and nothing after it, schemaVersion 2, a mediaType field that agrees
// with contentType, a config for an image manifest and none (nor layers)
// for an index, and descriptors with valid digests and sizes of at least 0.
// contentType "" leaves the media type to the body's mediaType field. The
// error is MANIFEST_INVALID and says what is wrong. It is the one check for
// a pushed manifest and for one fetched from an upstream.
func ParseManifest(contentType string, body []byte) (*oci.Manifest, string, error) {
	var doc oci.Manifest
	// Unmarshal, not a Decoder: data after the top-level value is invalid.
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, "", manifestInvalid("manifest is not valid JSON: %v", err)
	}
	mt := doc.MediaType
	if contentType != "" {
		ct, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, "", manifestInvalid("invalid Content-Type %q", contentType)
		}
		if mt != "" && mt != ct {
			return nil, "", manifestInvalid("Content-Type %s does not match the manifest's mediaType %s", ct, mt)
		}
		mt = ct
	}
	if !oci.IsManifest(mt) {
		return nil, "", manifestInvalid("manifest media type %q is not supported (OCI image manifest or index, Docker schema 2 manifest or list)", mt)
	}
	if doc.SchemaVersion != 2 {
		return nil, "", manifestInvalid("schemaVersion must be 2, not %d", doc.SchemaVersion)
	}
	if oci.IsIndex(mt) {
		if doc.Config != nil || doc.Layers != nil {
			return nil, "", manifestInvalid("an index has no config or layers")
		}
	} else if doc.Config == nil {
		return nil, "", manifestInvalid("an image manifest needs a config descriptor")
	}
	for _, d := range doc.Refs() {
		if _, err := ParseDigest(d.Digest); err != nil {
			return nil, "", manifestInvalid("descriptor digest %q is invalid", d.Digest)
		}
		if d.Size < 0 {
			return nil, "", manifestInvalid("descriptor %s has a negative size", d.Digest)
		}
	}
	if doc.Subject != nil {
		if _, err := ParseDigest(doc.Subject.Digest); err != nil {
			return nil, "", manifestInvalid("subject digest %q is invalid", doc.Subject.Digest)
		}
	}
	return &doc, mt, nil
}
