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

// Open returns the blob's file positioned at off (an *os.File, so a TCP
// response is sent with sendfile). A blob removed since it was found is
// ErrNotFound, which also matches fs.ErrNotExist.
func (b *BlobFile) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	f, _, err := b.Store.OpenBlob(ctx, b.Digest)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("blob %s: %w (%w)", b.Digest, ErrNotFound, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("seek blob: %w", err)
		}
	}
	return f, nil
}
