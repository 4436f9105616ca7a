package replicate

import (
	"bytes"
	"context"
	"io"

	"berth/store"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// storeImage is an image manifest of the store as go-containerregistry's
// remote writer reads it: blobs are opened from the store as they are sent.
type storeImage struct {
	ctx context.Context
	st  *store.Store
	raw []byte
	mt  types.MediaType
}

func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) MediaType() (types.MediaType, error) { return i.mt, nil }

func (i *storeImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(i.raw))
	if err != nil {
		return nil, err
	}
	f, _, err := i.st.OpenBlob(i.ctx, m.Config.Digest.String())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(i.raw))
	if err != nil {
		return nil, err
	}
	mt := types.MediaType("application/octet-stream")
	for _, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if l.Digest == h {
			mt = l.MediaType
		}
	}
	info, err := i.st.StatBlob(i.ctx, h.String())
	if err != nil {
		return nil, err
	}
	return &storeLayer{img: i, h: h, size: info.Size, mt: mt}, nil
}

type storeLayer struct {
	img  *storeImage
	h    v1.Hash
	size int64
	mt   types.MediaType
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.h, nil }
func (l *storeLayer) Size() (int64, error)                { return l.size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	f, _, err := l.img.st.OpenBlob(l.img.ctx, l.h.String())
	return f, err
}

// rawManifest is a manifest put as it is (an index, once its children are
// there).
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
