package registry

import (
	"context"
	"io"
)

// Source says where the bytes of a response came from; it is logged and
// counted per request.
type Source string

const (
	SourceNone     Source = ""
	SourceStore    Source = "store"
	SourceUpstream Source = "upstream"
	SourceStale    Source = "stale"
	SourcePeer     Source = "peer"
	SourceLocal    Source = "local"
)

// ManifestRequest is a GET or HEAD of /v2/<name>/manifests/<reference>.
type ManifestRequest struct {
	Repo      Repo
	Reference string // tag or digest
	Digest    Digest // set when Reference is a digest
	Head      bool
	Accept    []string // media types from the Accept header, in order
}

// Manifest is a manifest ready to be served.
type Manifest struct {
	MediaType string
	Digest    Digest
	Body      []byte
	Source    Source
}

// ManifestHandler serves manifests. It is the one ability every backend has.
type ManifestHandler interface {
	GetManifest(ctx context.Context, req ManifestRequest) (*Manifest, error)
}

// BlobRequest is a GET or HEAD of /v2/<name>/blobs/<digest>.
type BlobRequest struct {
	Repo   Repo
	Digest Digest
	Head   bool
}

// Blob is a blob ready to be served, whole or in part.
type Blob interface {
	// Size is the blob's length in bytes.
	Size() int64
	// Open returns the bytes from off to the end. A reader that fails part
	// way (a fill that did not verify) returns an error, never short data.
	Open(ctx context.Context, off int64) (io.ReadCloser, error)
	// Source says where the bytes come from.
	Source() Source
}

// BlobHandler serves blobs.
type BlobHandler interface {
	GetBlob(ctx context.Context, req BlobRequest) (Blob, error)
}

// TagLister lists the tags of a repository, sorted. Optional.
type TagLister interface {
	ListTags(ctx context.Context, repo Repo) ([]string, error)
}
