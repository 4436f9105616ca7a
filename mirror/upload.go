package mirror

import (
	"context"
	"io"

	"berth/errdefs"
	"berth/registry"
)

// chargeStep is how many upload bytes are charged to capacity at a time.
const chargeStep = 4 << 20

// chargedUpload charges an upload's bytes to the store's capacity as they
// arrive (Reserve evicts cached content to make room, or refuses with
// store full) and holds the upload to MaxUploadBytes. A refused chunk is
// discarded whole by the session; what arrived before it stays.
type chargedUpload struct {
	registry.Upload
	m *Mirror
}

func (m *Mirror) charged(u registry.Upload) registry.Upload {
	if m.opts.Reserve == nil && m.opts.MaxUploadBytes == nil {
		return u
	}
	return &chargedUpload{Upload: u, m: m}
}

func (u *chargedUpload) Append(ctx context.Context, r io.Reader) (int64, error) {
	return u.Upload.Append(ctx, &chargedReader{ctx: ctx, r: r, u: u, size: u.Size()})
}

type chargedReader struct {
	ctx     context.Context
	r       io.Reader
	u       *chargedUpload
	size    int64 // of the session, with what this chunk added so far
	pending int64 // read but not yet charged
	err     error
}

func (c *chargedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.size += int64(n)
	c.pending += int64(n)
	if max := c.u.m.maxUpload(); max > 0 && c.size > max {
		c.err = errdefs.New(errdefs.ErrTooLarge,
			"the upload is larger than local.maxUploadBytes (%d bytes) allows; this chunk was discarded", max)
		return 0, c.err
	}
	if reserve := c.u.m.opts.Reserve; reserve != nil && (c.pending >= chargeStep || err == io.EOF && c.pending > 0) {
		// The session's bytes are not in the store's blob bytes until
		// it commits: ask for room for all of them.
		if rerr := reserve(c.ctx, c.size); rerr != nil {
			c.err = rerr
			return 0, c.err
		}
		c.pending = 0
	}
	return n, err
}

func (m *Mirror) maxUpload() int64 {
	if m.opts.MaxUploadBytes == nil {
		return 0
	}
	return m.opts.MaxUploadBytes()
}
