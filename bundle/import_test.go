package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"berth/errdefs"
	"berth/internal/oci"
)

// A read failure of the request's own (cancelled, broken connection)
// keeps its cause and is no refusal of the bundle; a cut tar is.
func TestReadFailedKeepsTheCause(t *testing.T) {
	err := readFailed(context.Canceled, "reading manifest %s", "x")
	if !errors.Is(err, context.Canceled) || errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("a cancelled read: %v", err)
	}
	err = readFailed(io.ErrUnexpectedEOF, "reading manifest %s", "x")
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("a cut bundle: %v", err)
	}
	if err := readFailed(nil, "blob ends"); !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("a short entry: %v", err)
	}
}

// A bundle naming more images than MaxRoutes is refused from its index.
func TestImportCapsRoutes(t *testing.T) {
	x := Index{SchemaVersion: 2, MediaType: oci.MediaTypeImageIndex}
	for i := 0; i <= MaxRoutes; i++ {
		x.Manifests = append(x.Manifests, oci.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: Digest([]byte{byte(i)}), Size: 1,
			Annotations: map[string]string{AnnotationRoute: "private/app:v1"}})
	}
	index, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, index, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	_, err = Store{}.Import(context.Background(), &buf, nil)
	if !errors.Is(err, errdefs.ErrInvalidParameter) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("an index of %d images: %v", MaxRoutes+1, err)
	}
}
