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
// being written: each is a full chunk and none is final. Chunks are opened
// in place: a chunk's plaintext is the front of the buffer its ciphertext
// was read into.
type sealedFile struct {
	f      *os.File
	aead   cipher.AEAD
	header [headerSize]byte
	size   int64
	// corrupt reports chunk i failing authentication; its error is returned.
	corrupt func(i int64) error

	idx int64  // chunk in pt; -1 for none
	buf []byte // one sealed chunk
	pt  []byte // chunk idx's plaintext, in buf

	// openSpan's, reused: where each chunk's bytes are read to, and the
	// heads of its chunks after the first.
	iov   [][]byte
	heads [spanChunks][tagSize]byte
}

func newSealedFile(f *os.File, dk, fileID []byte, size int64) (*sealedFile, error) {
	a, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	return &sealedFile{f: f, aead: a, header: newHeader(fileID), size: size, idx: -1,
		buf: make([]byte, sealedChunk)}, nil
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

// nonce is chunk i's nonce.
func (c *sealedFile) nonce(i int64) []byte {
	return chunkNonce(i, c.size >= 0 && i == chunks(c.size)-1)
}

// chunk returns chunk i's plaintext, valid until the next call.
func (c *sealedFile) chunk(i int64) ([]byte, error) {
	if i == c.idx {
		return c.pt, nil
	}
	c.idx = -1
	ct := c.buf[:c.plainLen(i)+tagSize]
	if _, err := c.f.ReadAt(ct, headerSize+i*sealedChunk); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, c.corrupt(i) // cut short
		}
		return nil, fmt.Errorf("read blob file: %w", err)
	}
	pt, err := c.aead.Open(ct[:0], c.nonce(i), ct, c.header[:])
	if err != nil {
		return nil, c.corrupt(i)
	}
	c.pt, c.idx = pt, i
	return pt, nil
}

// spanBufLen is the buffer openSpan needs for spanChunks chunks: their
// plaintext and the tag of the last.
const spanBufLen = spanChunks*chunkSize + tagSize

// openSpan reads chunks i to i+k-1 (k at most spanChunks) into buf (room
// for their plaintext and one tag) with one read and opens them in place;
// it returns their plaintext, contiguous at the front of buf.
//
// A chunk opens in place only with its tag right behind its ciphertext,
// so each chunk is read to where its plaintext goes and its tag to just
// after that, where the next chunk's plaintext begins: the next chunk's
// first tagSize bytes are read aside, into heads, and put in place over
// the tag once the chunk before has opened. (Every sealed chunk has at
// least those bytes: its tag.)
//
// The read is a copy from the page cache (about 0.15 s of a core per GB
// on the benchmark's 2-core VM). Mapping the file instead would spare it
// but cost more there: mapping, opening and unmapping 256 MiB took about
// 1 s per GB, against 0.4 s for preadv and opening, in page faults; and a
// file cut short under a mapping faults (SIGBUS) instead of reading short.
func (c *sealedFile) openSpan(buf []byte, i, k int64) ([]byte, error) {
	iov := c.iov[:0]
	pos := 0
	for j := range int(k) {
		n := c.plainLen(i+int64(j)) + tagSize
		if j == 0 {
			iov = append(iov, buf[:n])
		} else if iov = append(iov, c.heads[j][:]); n > tagSize {
			iov = append(iov, buf[pos+tagSize:pos+n])
		}
		pos += n - tagSize
	}
	c.iov = iov
	got, err := readvAt(c.f, iov, headerSize+i*sealedChunk)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, c.corrupt(i + int64(got)/sealedChunk) // cut short
		}
		return nil, fmt.Errorf("read blob file: %w", err)
	}
	pos = 0
	for j := range int(k) {
		n := c.plainLen(i+int64(j)) + tagSize
		if j > 0 {
			copy(buf[pos:], c.heads[j][:])
		}
		ct := buf[pos : pos+n]
		if _, err := c.aead.Open(ct[:0], c.nonce(i+int64(j)), ct, c.header[:]); err != nil {
			return nil, c.corrupt(i + int64(j))
		}
		pos += n - tagSize
	}
	return buf[:pos], nil
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

// advance drops the first n bytes of iov's buffers, and the buffers left
// empty.
func advance(iov [][]byte, n int) [][]byte {
	for len(iov) > 0 && n >= len(iov[0]) {
		n -= len(iov[0])
		iov = iov[1:]
	}
	if len(iov) > 0 {
		iov[0] = iov[0][n:]
	}
	return iov
}
