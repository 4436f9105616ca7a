// Package bundle carries images across an air gap: an OCI image layout in
// a tar file (oci-layout, index.json, blobs/sha256/...) that skopeo,
// crane and oras read, written and read as a stream, with an optional
// Ed25519 signature over its index.json. Export reads images from the
// node's store; Import verifies every digest and stores images as a pull
// or a push would.
package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"berth/internal/oci"
)

// Annotations Berth writes.
const (
	// AnnotationRefName is the OCI name of an image in the layout: its
	// Berth route, e.g. "docker-hub/library/alpine:3.20".
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationRoute is the image's Berth route: the repository and tag
	// (or digest) as clients pull it through Berth.
	AnnotationRoute = "io.berth.route"
	// AnnotationCreated is when the bundle was written (RFC 3339), on the
	// index; imported tags are stamped with it.
	AnnotationCreated = "org.opencontainers.image.created"
	// AnnotationBase is, on a delta bundle's index, the digest of the
	// index.json of the bundle it leaves blobs out of.
	AnnotationBase = "io.berth.bundle.base"
)

// Names of the layout's files.
const (
	LayoutFile    = "oci-layout"
	IndexFile     = "index.json"
	SignatureFile = "berth-signature.json"
	blobDir       = "blobs/sha256/"
)

// Index is the layout's index.json.
type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []oci.Descriptor  `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Created is the bundle's time, zero when it has none.
func (x *Index) Created() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, x.Annotations[AnnotationCreated])
	return t
}

// Writer writes a layout to a tar stream: the layout file and index.json
// first, so a reader can check the signature before any blob.
type Writer struct{ tw *tar.Writer }

// NewWriter starts a bundle on w with its index (and its signature when
// sig is not nil, see Sign).
func NewWriter(w io.Writer, index []byte, sig []byte) (*Writer, error) {
	bw := &Writer{tw: tar.NewWriter(w)}
	if err := bw.file(LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := bw.file(IndexFile, index); err != nil {
		return nil, err
	}
	if sig != nil {
		if err := bw.file(SignatureFile, sig); err != nil {
			return nil, err
		}
	}
	return bw, nil
}

func (w *Writer) file(name string, data []byte) error {
	if err := w.tw.WriteHeader(header(name, int64(len(data)))); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	_, err := w.tw.Write(data)
	return err
}

// Blob copies a blob of size bytes from r.
func (w *Writer) Blob(digest string, size int64, r io.Reader) error {
	name, err := BlobPath(digest)
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(header(name, size)); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if n, err := io.Copy(w.tw, io.LimitReader(r, size)); err != nil || n != size {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("bundle: blob %s: wrote %d of %d bytes: %w", digest, n, size, err)
	}
	return nil
}

// Close ends the tar stream.
func (w *Writer) Close() error { return w.tw.Close() }

// Header copies a tar entry as it is: the signer passes a bundle through.
func (w *Writer) Raw(h *tar.Header, r io.Reader) error {
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := io.Copy(w.tw, r)
	return err
}

func header(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o444, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
}

// BlobPath is the layout path of a sha256 digest.
func BlobPath(digest string) (string, error) {
	hx, ok := sha256Hex(digest)
	if !ok {
		return "", fmt.Errorf("bundle: %q is not a sha256 digest", digest)
	}
	return blobDir + hx, nil
}

// BlobDigest is the digest of a layout path, ok false for other files.
func BlobDigest(name string) (string, bool) {
	if len(name) != len(blobDir)+64 || name[:len(blobDir)] != blobDir {
		return "", false
	}
	d := "sha256:" + name[len(blobDir):]
	_, ok := sha256Hex(d)
	return d, ok
}

func sha256Hex(d string) (string, bool) {
	if len(d) != 71 || d[:7] != "sha256:" {
		return "", false
	}
	if _, err := hex.DecodeString(d[7:]); err != nil {
		return "", false
	}
	return d[7:], true
}

// Digest is the sha256 digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseIndex reads an index.json.
func ParseIndex(b []byte) (*Index, error) {
	var x Index
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("bundle: index.json is not valid JSON: %w", err)
	}
	if x.SchemaVersion != 2 {
		return nil, fmt.Errorf("bundle: index.json has schemaVersion %d, not 2", x.SchemaVersion)
	}
	return &x, nil
}

// Contents reads a bundle through and returns its index.json (nil when it
// has none) and the digests of the blobs it carries, in order.
func Contents(r io.Reader) (index []byte, blobs []string, err error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return index, blobs, nil
		} else if err != nil {
			return nil, nil, fmt.Errorf("not a bundle: %w", err)
		}
		if h.Name == IndexFile {
			if index, err = io.ReadAll(io.LimitReader(tr, oci.MaxManifestBytes+1)); err != nil {
				return nil, nil, err
			}
		} else if d, ok := BlobDigest(h.Name); ok {
			blobs = append(blobs, d)
		}
	}
}

// FileBlobs reads the bundle file at path through and returns the set of
// the blob digests it carries.
func FileBlobs(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, blobs, err := Contents(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set := make(map[string]bool, len(blobs))
	for _, d := range blobs {
		set[d] = true
	}
	return set, nil
}
