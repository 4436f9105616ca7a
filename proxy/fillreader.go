package proxy

import (
	"context"
	"fmt"
	"io"
	"os"

	"berth/store"
)

// fillReader reads a fill from off, waiting for bytes as they arrive.
type fillReader struct {
	f      *fill
	off    int64
	ctx    context.Context
	closed bool
}

// ready waits until bytes past r.off may be read, and returns the file
// they are in and how far they go; io.EOF at the end, or the fill's error.
// The last byte waits for the digest check.
func (r *fillReader) ready() (store.ReaderAtCloser, int64, error) {
	f := r.f
	for {
		f.mu.Lock()
		avail := f.written
		if !f.verified && avail > 0 {
			avail-- // the last byte waits for verification
		}
		if f.done && f.err != nil && !f.verified {
			err := f.err
			f.mu.Unlock()
			return nil, 0, fmt.Errorf("fill of %s failed: %w", f.digest, err)
		}
		if r.off >= f.size && (f.done || f.verified) {
			f.mu.Unlock()
			return nil, 0, io.EOF
		}
		if r.off < avail {
			file := f.file
			f.mu.Unlock()
			return file, avail, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-r.ctx.Done():
			return nil, 0, r.ctx.Err()
		}
	}
}

func (r *fillReader) Read(p []byte) (int, error) {
	file, avail, err := r.ready()
	if err != nil {
		return 0, err
	}
	if int64(len(p)) > avail-r.off {
		p = p[:avail-r.off]
	}
	n, err := file.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo sends the fill from r.off to its end as its bytes arrive. The
// first bytes go by copy, as Read gives them. Then, into a writer that takes
// files (an HTTP response, which sends them with sendfile), the bytes of a
// plaintext fill go from the page cache to the socket without a copy
// through Berth, from a descriptor of this reader's own on the fill's file.
// Otherwise, or when that file was committed away before it could be
// opened, they go on by copy.
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	rf, _ := w.(io.ReaderFrom)
	var own *os.File
	defer func() {
		if own != nil {
			own.Close()
		}
	}()
	var buf []byte
	var sent int64
	for tried := false; ; {
		if own == nil {
			if buf == nil {
				buf = make([]byte, 64<<10)
			}
			n, err := r.Read(buf)
			if n > 0 {
				m, werr := w.Write(buf[:n])
				sent += int64(m)
				if werr != nil {
					return sent, werr
				}
			}
			if err == io.EOF {
				return sent, nil
			}
			if err != nil {
				return sent, err
			}
			if !tried && rf != nil {
				tried = true
				own = r.openOwn()
			}
			continue
		}
		_, avail, err := r.ready()
		if err == io.EOF {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
		if _, err := own.Seek(r.off, io.SeekStart); err != nil {
			return sent, err
		}
		k, err := rf.ReadFrom(&io.LimitedReader{R: own, N: avail - r.off})
		r.off += k
		sent += k
		if err != nil {
			return sent, err
		}
	}
}

// openOwn opens a descriptor of the reader's own on a plaintext fill's
// file; nil for an encrypted fill or a file already committed away.
func (r *fillReader) openOwn() *os.File {
	r.f.mu.Lock()
	pf, ok := r.f.file.(*os.File)
	r.f.mu.Unlock()
	if !ok {
		return nil
	}
	own, err := os.Open(pf.Name())
	if err != nil {
		return nil
	}
	return own
}

func (r *fillReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.f.mu.Lock()
	r.f.releaseLocked()
	r.f.mu.Unlock()
	return nil
}
