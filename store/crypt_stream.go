package store

import (
	"encoding/hex"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// blobStream reads an encrypted blob from an offset to its end. Read from
// the start, it hashes the plaintext and checks the digest before it hands
// out the final chunk, so a whole read is verified end to end too.
//
// Read decrypts on the caller's goroutine, only the chunks it reaches.
// WriteTo (what io.Copy and the HTTP edge use to send a blob to its end)
// runs a pipeline instead: a reader goroutine reads a span of chunks with
// one preadv and opens them in place, a hasher goroutine hashes the spans,
// and the caller's goroutine writes them, so the three overlap; a few
// spans are in flight at most (spanRing), and the last span is written
// only once the hasher has checked the digest.
type blobStream struct {
	c      *sealedFile
	off    int64
	h      hash.Hash // nil unless read from 0
	hex    string
	hashed int64
	bad    func() error // the digest did not match
	err    error        // a failure is returned again by every later call
}

// Read fills p with plaintext from the stream's offset, across chunks.
func (r *blobStream) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.off >= r.c.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.c.size {
		pt, err := r.next()
		if err != nil {
			r.err = err
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		k := copy(p[n:], pt)
		n += k
		r.off += int64(k)
	}
	return n, nil
}

// next returns the plaintext from the offset to the end of its chunk,
// hashing the chunk first when the hash has reached it; the final chunk
// comes out only when the digest matched.
func (r *blobStream) next() ([]byte, error) {
	i := r.off / chunkSize
	pt, err := r.c.chunk(i)
	if err != nil {
		return nil, err
	}
	if r.h != nil && r.hashed == i*chunkSize {
		r.h.Write(pt)
		r.hashed += int64(len(pt))
		if r.hashed == r.c.size && hex.EncodeToString(r.h.Sum(nil)) != r.hex {
			return nil, r.bad()
		}
	}
	return pt[r.off-i*chunkSize:], nil
}

func (r *blobStream) Close() error { return r.c.Close() }

// The pipeline's sizes: a span is spanChunks chunks (512 KiB), read with
// one preadv, opened in place and written with one write; spanRing spans
// are in flight, so a stream holds about 2 MiB while it writes itself. Spans of 4 chunks
// cost about 6% more CPU per GB (BenchmarkEncryptedWarmRead, in wakeups
// and syscalls); spans of 16 were no better.
const (
	spanChunks = 8
	spanRing   = 4
)

// span is the plaintext of spanChunks chunks (fewer at the end), or the
// error that stopped the reader there.
type span struct {
	buf  []byte // spanBufLen bytes, read and opened in place
	pt   []byte // in buf
	last bool   // holds the blob's final chunk
	err  error
	refs atomic.Int32 // the writer's and the hasher's; freed at 0
}

// spanBufs keeps the pipeline's buffers between streams.
var spanBufs = sync.Pool{New: func() any { return &span{buf: make([]byte, spanBufLen)} }}

// WriteTo writes the plaintext from the offset to the end to w. A blob of
// one span is written chunk by chunk on the caller's goroutine; a larger
// one through the pipeline, whose goroutines end before WriteTo returns,
// whether w failed, a chunk failed authentication or the digest did not
// match.
func (r *blobStream) WriteTo(w io.Writer) (int64, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.c.size-r.off <= spanChunks*chunkSize {
		return r.writeChunks(w)
	}
	first := r.off / chunkSize
	p := r.startPipeline(first)
	defer p.stop()
	skip := r.off - first*chunkSize // bytes of the first span not sent
	var sent int64
	for {
		s := <-p.out
		if s.err != nil {
			r.err = s.err
			return sent, r.err
		}
		last := s.last
		if last && p.verdict != nil && !<-p.verdict {
			r.err = r.bad()
			return sent, r.err
		}
		k, err := w.Write(s.pt[skip:])
		p.release(s)
		skip = 0
		sent += int64(k)
		r.off += int64(k)
		if err != nil {
			r.err = err
			return sent, err
		}
		if last {
			return sent, nil
		}
	}
}

// writeChunks writes the rest of the stream chunk by chunk.
func (r *blobStream) writeChunks(w io.Writer) (int64, error) {
	var sent int64
	for r.off < r.c.size {
		pt, err := r.next()
		if err == nil {
			var k int
			k, err = w.Write(pt)
			sent += int64(k)
			r.off += int64(k)
		}
		if err != nil {
			r.err = err
			return sent, err
		}
	}
	return sent, nil
}

// pipeline is one WriteTo's reader and hasher.
type pipeline struct {
	c       *sealedFile
	spans   []*span
	free    chan *span // spans the reader may fill
	out     chan *span // to the writer, in order
	hashIn  chan *span // to the hasher, in order; nil without one
	verdict chan bool  // the hasher's: the digest matched
	quit    chan struct{}
	wg      sync.WaitGroup
}

// startPipeline starts reading at chunk first, and hashing when the
// stream hashes. Every channel holds the whole ring, so a send never
// waits.
func (r *blobStream) startPipeline(first int64) *pipeline {
	n := int(min(spanRing, (chunks(r.c.size)-first+spanChunks-1)/spanChunks))
	p := &pipeline{c: r.c, free: make(chan *span, n), out: make(chan *span, n), quit: make(chan struct{})}
	for range n {
		s := spanBufs.Get().(*span)
		p.spans = append(p.spans, s)
		p.free <- s
	}
	refs := int32(1)
	if r.h != nil {
		refs = 2
		p.hashIn, p.verdict = make(chan *span, n), make(chan bool, 1)
		// Read may have hashed the first chunk already.
		skip := r.hashed - first*chunkSize
		r.hashed = r.c.size
		p.wg.Add(1)
		go p.hash(r.h, skip, r.hex)
	}
	p.wg.Add(1)
	go p.read(first, refs)
	return p
}

// read fills spans from chunk first to the final chunk, or to the first
// failure, which it hands the writer in place of a span.
func (p *pipeline) read(first int64, refs int32) {
	defer p.wg.Done()
	final := chunks(p.c.size) - 1
	for i := first; i <= final; i += spanChunks {
		var s *span
		select {
		case s = <-p.free:
		case <-p.quit:
			return
		}
		k := min(spanChunks, final-i+1)
		s.pt, s.err = p.c.openSpan(s.buf, i, k)
		s.last = i+k-1 == final
		if s.err != nil {
			s.refs.Store(1)
			p.out <- s
			return
		}
		s.refs.Store(refs)
		if p.hashIn != nil {
			p.hashIn <- s
		}
		p.out <- s
	}
}

// hash hashes the spans after skip bytes and gives the verdict after the
// last one.
func (p *pipeline) hash(h hash.Hash, skip int64, want string) {
	defer p.wg.Done()
	for {
		var s *span
		select {
		case s = <-p.hashIn:
		case <-p.quit:
			return
		}
		h.Write(s.pt[skip:])
		skip = 0
		last := s.last
		p.release(s)
		if last {
			p.verdict <- hex.EncodeToString(h.Sum(nil)) == want
			return
		}
	}
}

// release drops one holder of s; the last one gives it back to the reader.
func (p *pipeline) release(s *span) {
	if s.refs.Add(-1) == 0 {
		p.free <- s
	}
}

// stop ends the reader and the hasher, waits for them and keeps the
// buffers for the next stream.
func (p *pipeline) stop() {
	close(p.quit)
	p.wg.Wait()
	for _, s := range p.spans {
		s.pt, s.err = nil, nil
		spanBufs.Put(s)
	}
}
