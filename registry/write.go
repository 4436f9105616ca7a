package registry

import (
	"context"
	"io"

	"berth/internal/oci"
)

// The abilities below are optional; the Server finds them on the backend by
// type assertion. A backend without one answers 405 UNSUPPORTED for the
// endpoints it serves.

// Upload is one blob upload session.
type Upload interface {
	// ID is the session's identifier, used in its Location.
	ID() string
	// Size is how many bytes were received so far.
	Size() int64
	// Append adds the bytes of r at the end of what was received and
	// returns the new size.
	Append(ctx context.Context, r io.Reader) (int64, error)
	// Commit checks that the bytes received hash to d, stores the blob,
	// links it to the repository and ends the session. On a mismatch it
	// returns a DIGEST_INVALID error and the session stays open.
	Commit(ctx context.Context, d Digest) error
	// Cancel ends the session and discards its bytes.
	Cancel(ctx context.Context) error
}

// Uploader runs blob upload sessions.
type Uploader interface {
	StartUpload(ctx context.Context, repo Repo) (Upload, error)
	// GetUpload returns an open session of repo, or BLOB_UPLOAD_UNKNOWN.
	GetUpload(ctx context.Context, repo Repo, id string) (Upload, error)
}

// BlobMounter links a blob that exists elsewhere into repo without an
// upload. from is the source repository, resolved like repo; its Name is
// empty when the client named none. It returns a BLOB_UNKNOWN error when it cannot mount, and the
// Server then starts an ordinary upload session.
type BlobMounter interface {
	MountBlob(ctx context.Context, repo Repo, from Repo, d Digest) error
}

// ManifestPut is a PUT of /v2/<name>/manifests/<reference>.
type ManifestPut struct {
	Repo      Repo
	Reference string // tag or digest as sent
	Digest    Digest // set when Reference is a digest
	// Tags are extra tags from ?tag= parameters.
	Tags      []string
	MediaType string // the request's Content-Type
	Body      []byte
}

// PutResult is what a stored manifest tells the client.
type PutResult struct {
	Digest Digest
	// Subject is the manifest's subject digest, "" when it has none.
	Subject Digest
}

// ManifestPutter stores manifests.
type ManifestPutter interface {
	PutManifest(ctx context.Context, req ManifestPut) (PutResult, error)
}

// ManifestDeleter deletes a manifest by digest, or a tag (leaving its
// manifest).
type ManifestDeleter interface {
	DeleteManifest(ctx context.Context, repo Repo, reference string) error
}

// BlobDeleter deletes a blob from a repository.
type BlobDeleter interface {
	DeleteBlob(ctx context.Context, repo Repo, d Digest) error
}

// Cataloger lists repositories, sorted.
type Cataloger interface {
	Catalog(ctx context.Context) ([]string, error)
}

// TagPager is an optional ability of a tag lister: up to n tags after
// last, sorted, read without listing every tag; more reports whether
// others follow.
type TagPager interface {
	ListTagsPage(ctx context.Context, repo Repo, last string, n int) (tags []string, more bool, err error)
}

// CatalogPager is an optional ability of a Cataloger: up to n
// repositories after last, sorted, read without listing them all.
type CatalogPager interface {
	CatalogPage(ctx context.Context, last string, n int) (repos []string, more bool, err error)
}

// Descriptor is an entry of a referrers index.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// ReferrerDescriptor is the referrers-API entry of a manifest (doc, as
// mediaType, digest d, size bytes) that has a subject.
func ReferrerDescriptor(doc *oci.Manifest, mediaType string, d Digest, size int64) Descriptor {
	return Descriptor{MediaType: mediaType, Digest: d, Size: size, ArtifactType: doc.ReferrerType(), Annotations: doc.Annotations}
}

// ReferrersLister lists the manifests whose subject is d.
type ReferrersLister interface {
	Referrers(ctx context.Context, repo Repo, d Digest) ([]Descriptor, error)
}
