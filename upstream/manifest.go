package upstream

import (
	"encoding/json"
	"errors"
	"fmt"

	"berth/internal/oci"
	"berth/registry"
)

// ErrInvalidManifest marks an upstream answer that is not a manifest of a
// media type Berth accepts. It is also ErrUnavailable: the upstream could
// not give what was asked, and a cached copy may be served instead.
var ErrInvalidManifest = errors.New("upstream sent an invalid manifest")

// manifestError is an upstream's answer for a manifest that did not parse
// as one. Nothing of it is stored or served.
type manifestError struct {
	upstream, what string
	reason         error
}

func (e *manifestError) Error() string {
	return fmt.Sprintf("upstream %s: %v for %s: %v", e.upstream, ErrInvalidManifest, e.what, e.reason)
}

func (e *manifestError) Is(target error) bool {
	return target == ErrInvalidManifest || target == ErrUnavailable
}

// checkManifest checks that body, answered with media type mt (the
// Content-Type, or the body's own when the upstream named none), parses as
// a manifest of a type Berth accepts (registry.ParseManifest), or as the
// Docker schema 1 manifest it claims to be. index asks for an index.
func (u *Upstream) checkManifest(what, mt string, body []byte, index bool) error {
	var err error
	switch {
	case oci.IsSchema1(mt) && !index:
		err = checkSchema1(body)
	case !oci.IsManifest(mt):
		err = fmt.Errorf("its media type %q is not a manifest or index type (%s)", mt, oci.AcceptManifests)
	default:
		if _, mt, err = registry.ParseManifest(mt, body); err == nil && index && !oci.IsIndex(mt) {
			err = fmt.Errorf("a %s where an image index was expected", mt)
		}
	}
	if err != nil {
		return &manifestError{upstream: u.Rule.Name, what: what, reason: err}
	}
	return nil
}

// checkSchema1 checks the shape of a Docker schema 1 manifest: a JSON
// object with schemaVersion 1 whose layers have valid digests.
func checkSchema1(body []byte) error {
	var m struct {
		SchemaVersion int `json:"schemaVersion"`
		FSLayers      []struct {
			BlobSum string `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("schema 1 manifest is not valid JSON: %w", err)
	}
	if m.SchemaVersion != 1 {
		return fmt.Errorf("a schema 1 manifest has schemaVersion 1, not %d", m.SchemaVersion)
	}
	for _, l := range m.FSLayers {
		if _, err := registry.ParseDigest(l.BlobSum); err != nil {
			return fmt.Errorf("schema 1 layer digest %q is invalid", l.BlobSum)
		}
	}
	return nil
}
