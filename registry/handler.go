package registry

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
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

// BlobBody is a blob's bytes without their Source.
type BlobBody interface {
	Size() int64
	Open(ctx context.Context, off int64) (io.ReadCloser, error)
}

// SourcedBlob is a BlobBody served as coming from From. A body whose Open
// fails with fs.ErrNotExist (a blob removed between lookup and read) is
// answered as BLOB_UNKNOWN for Digest.
type SourcedBlob struct {
	BlobBody
	From   Source
	Digest string
}

func (b *SourcedBlob) Source() Source { return b.From }

func (b *SourcedBlob) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	rc, err := b.BlobBody.Open(ctx, off)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Status: http.StatusNotFound, Code: CodeBlobUnknown,
				Message: "blob unknown to registry: " + b.Digest + " (it was removed while being served; retry)", Err: err}
		}
	}
	return rc, err
}

// BlobHandler serves blobs.
type BlobHandler interface {
	GetBlob(ctx context.Context, req BlobRequest) (Blob, error)
}

// TagLister lists the tags of a repository, sorted. Optional.
type TagLister interface {
	ListTags(ctx context.Context, repo Repo) ([]string, error)
}
