package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// BlobFile is a committed blob read from its file: what local repositories
// and the pull-through cache serve for a blob the store holds.
type BlobFile struct {
	Store  *Store
	Digest string
	Len    int64
}

// Size is the blob's length in bytes.
func (b *BlobFile) Size() int64 { return b.Len }

// Open returns the blob's plaintext from off: a plaintext blob's file (an
// *os.File, so a TCP response is sent with sendfile), or an encrypted
// blob's stream, which decrypts only the chunks it reads. A blob removed
// since it was found is ErrNotFound, which also matches fs.ErrNotExist.
func (b *BlobFile) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	rc, _, err := b.Store.openBlobAt(ctx, b.Digest, off)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("blob %s: %w (%w)", b.Digest, ErrNotFound, fs.ErrNotExist)
	}
	return rc, err
}
