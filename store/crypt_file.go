package store

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// sealer encrypts a blob as it is written: it keeps the chunk being
// filled in memory and seals it once the next byte arrives (or at finish,
// as the final chunk). Followers of a fill read the sealed chunks from the
// file and the open one from memory (see follower).
type sealer struct {
	f      *os.File
	aead   cipher.AEAD
	header [headerSize]byte
	out    []byte // the sealed chunk being written

	mu  sync.Mutex
	buf []byte // plaintext of chunk idx, not yet sealed (or the final one)
	idx int64  // chunks below idx are sealed in the file
}

func newSealer(f *os.File, dk, fileID []byte) (*sealer, error) {
	a, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	s := &sealer{f: f, aead: a, header: newHeader(fileID), buf: make([]byte, 0, chunkSize), out: make([]byte, 0, sealedChunk)}
	if _, err := f.Write(s.header[:]); err != nil {
		return nil, fmt.Errorf("write blob file header: %w", err)
	}
	return s, nil
}

// write encrypts p into the file, chunk by chunk.
func (s *sealer) write(p []byte) error {
	for len(p) > 0 {
		if len(s.buf) == chunkSize {
			if err := s.seal(false); err != nil {
				return err
			}
		}
		n := min(chunkSize-len(s.buf), len(p))
		s.mu.Lock()
		s.buf = append(s.buf, p[:n]...)
		s.mu.Unlock()
		p = p[n:]
	}
	return nil
}

// finish seals the last chunk as final. Its plaintext stays in memory for
// followers.
func (s *sealer) finish() error { return s.seal(true) }

func (s *sealer) seal(final bool) error {
	s.out = s.aead.Seal(s.out[:0], chunkNonce(s.idx, final), s.buf, s.header[:])
	if _, err := s.f.Write(s.out); err != nil {
		return err
	}
	if !final {
		s.mu.Lock()
		s.idx++
		s.buf = s.buf[:0]
		s.mu.Unlock()
	}
	return nil
}

// sealedFile decrypts an encrypted blob file chunk by chunk, keeping the
// last chunk it opened. size -1 reads the sealed chunks of a file still
// being written: each is a full chunk and none is final.
type sealedFile struct {
	f      *os.File
	aead   cipher.AEAD
	header [headerSize]byte
	size   int64
	// corrupt reports chunk i failing authentication; its error is returned.
	corrupt func(i int64) error

	idx int64 // chunk in pt; -1 for none
	ct  []byte
	pt  []byte
}

func newSealedFile(f *os.File, dk, fileID []byte, size int64) (*sealedFile, error) {
	a, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	return &sealedFile{f: f, aead: a, header: newHeader(fileID), size: size, idx: -1,
		ct: make([]byte, sealedChunk), pt: make([]byte, 0, chunkSize)}, nil
}

// checkHeader reads the file's header: a file of another commit of the
// digest (a delete and a new fill raced the open) has another id.
func (c *sealedFile) checkHeader() error {
	var h [headerSize]byte
	if _, err := c.f.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("read blob file header: %w", err)
	}
	if h != c.header {
		return errStaleFile
	}
	return nil
}

// errStaleFile is a blob file that is not the one its index record names.
var errStaleFile = errors.New("blob file is not the indexed one")

// plainLen is the plaintext length of chunk i.
func (c *sealedFile) plainLen(i int64) int {
	if c.size < 0 {
		return chunkSize
	}
	return int(min(chunkSize, c.size-i*chunkSize))
}

// chunk returns chunk i's plaintext, valid until the next call.
func (c *sealedFile) chunk(i int64) ([]byte, error) {
	if i == c.idx {
		return c.pt, nil
	}
	c.idx = -1
	ct := c.ct[:c.plainLen(i)+tagSize]
	if _, err := c.f.ReadAt(ct, headerSize+i*sealedChunk); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, c.corrupt(i) // cut short
		}
		return nil, fmt.Errorf("read blob file: %w", err)
	}
	final := c.size >= 0 && i == chunks(c.size)-1
	pt, err := c.aead.Open(c.pt[:0], chunkNonce(i, final), ct, c.header[:])
	if err != nil {
		return nil, c.corrupt(i)
	}
	c.pt, c.idx = pt, i
	return pt, nil
}

// openSpan reads chunks i to i+k-1 with one pread into ct (room for k
// sealed chunks) and appends their plaintext to pt. On a failure it
// returns pt as it was (its buffer is kept) and the error.
func (c *sealedFile) openSpan(pt, ct []byte, i, k int64) ([]byte, error) {
	base := pt
	n := 0
	for j := range k {
		n += c.plainLen(i+j) + tagSize
	}
	ct = ct[:n]
	if got, err := c.f.ReadAt(ct, headerSize+i*sealedChunk); err != nil {
		if errors.Is(err, io.EOF) {
			return base, c.corrupt(i + int64(got)/sealedChunk) // cut short
		}
		return base, fmt.Errorf("read blob file: %w", err)
	}
	last := chunks(c.size) - 1
	for j := range k {
		m := c.plainLen(i+j) + tagSize
		out, err := c.aead.Open(pt, chunkNonce(i+j, c.size >= 0 && i+j == last), ct[:m], c.header[:])
		if err != nil {
			return base, c.corrupt(i + j)
		}
		pt, ct = out, ct[m:]
	}
	return pt, nil
}

// ReadAt reads plaintext at off, decrypting only the chunks it touches.
func (c *sealedFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for n < len(p) {
		if c.size >= 0 && off >= c.size {
			return n, io.EOF
		}
		k, err := c.copyAt(p[n:], off)
		n += k
		off += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// copyAt copies into p the plaintext from off to the end of off's chunk.
func (c *sealedFile) copyAt(p []byte, off int64) (int, error) {
	i := off / chunkSize
	pt, err := c.chunk(i)
	if err != nil {
		return 0, err
	}
	return copy(p, pt[off-i*chunkSize:]), nil
}

func (c *sealedFile) Close() error { return c.f.Close() }

// follower reads the plaintext of a blob being written by a sealer.
type follower struct {
	s *sealer
	c *sealedFile
}

func (f *follower) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		i := off / chunkSize
		f.s.mu.Lock()
		sealed := f.s.idx
		if i == sealed {
			k := 0
			if within := off - i*chunkSize; within < int64(len(f.s.buf)) {
				k = copy(p[n:], f.s.buf[within:])
			}
			f.s.mu.Unlock()
			if k == 0 {
				return n, io.EOF
			}
			n += k
			off += int64(k)
			continue
		}
		f.s.mu.Unlock()
		if i > sealed {
			return n, io.EOF
		}
		k, err := f.c.copyAt(p[n:], off)
		n += k
		off += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (f *follower) Close() error { return f.c.Close() }
