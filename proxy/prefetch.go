package proxy

import (
	"io"
	"sync"
)

// prefetchChunk is how much one read ahead takes; prefetchDepth chunks may
// wait, so a fill reads the network while it hashes and writes.
const (
	prefetchChunk = 256 << 10
	prefetchDepth = 4
)

var prefetchBufs = sync.Pool{New: func() any { b := make([]byte, prefetchChunk); return &b }}

type prefetchPiece struct {
	buf *[]byte
	n   int
	err error
}

// prefetcher reads its source ahead in a goroutine and hands the bytes,
// and then the source's error, over in order.
type prefetcher struct {
	src    io.ReadCloser
	pieces chan prefetchPiece
	stop   chan struct{}
	once   sync.Once

	cur  *[]byte
	rest []byte
	err  error
}

func newPrefetcher(src io.ReadCloser) *prefetcher {
	p := &prefetcher{src: src, pieces: make(chan prefetchPiece, prefetchDepth), stop: make(chan struct{})}
	go p.run()
	return p
}

func (p *prefetcher) run() {
	defer close(p.pieces)
	for {
		bp := prefetchBufs.Get().(*[]byte)
		n, err := p.src.Read(*bp)
		select {
		case p.pieces <- prefetchPiece{bp, n, err}:
		case <-p.stop:
			prefetchBufs.Put(bp)
			return
		}
		if err != nil {
			return
		}
	}
}

// next returns the next bytes read, without copying them: they are valid
// until the next call of next, Read or Close. It returns the source's
// error (io.EOF at its end) once every byte before it was returned.
func (p *prefetcher) next() ([]byte, error) {
	if len(p.rest) == 0 {
		if p.cur != nil {
			prefetchBufs.Put(p.cur)
			p.cur = nil
		}
		if p.err != nil {
			return nil, p.err
		}
		piece, ok := <-p.pieces
		if !ok {
			return nil, io.ErrClosedPipe
		}
		p.cur, p.rest, p.err = piece.buf, (*piece.buf)[:piece.n], piece.err
	}
	b := p.rest
	p.rest = nil
	if len(b) == 0 {
		return nil, p.err
	}
	return b, nil
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.rest) == 0 {
		if p.cur != nil {
			prefetchBufs.Put(p.cur)
			p.cur = nil
		}
		if p.err != nil {
			return 0, p.err
		}
		piece, ok := <-p.pieces
		if !ok {
			return 0, io.ErrClosedPipe
		}
		p.cur, p.rest, p.err = piece.buf, (*piece.buf)[:piece.n], piece.err
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	return n, nil
}

// Close stops the read-ahead and closes the source.
func (p *prefetcher) Close() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		err = p.src.Close() // unblocks a read in progress
		for piece := range p.pieces {
			prefetchBufs.Put(piece.buf)
		}
		if p.cur != nil {
			prefetchBufs.Put(p.cur)
			p.cur = nil
		}
	})
	return err
}
