package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The sealed reference (scenario 14) is the least a server that keeps a
// blob encrypted and checks its digest on every whole read can do: the
// reference server's /sealed/<hex> reads a file of AES-256-GCM chunks,
// opens them, hashes the plaintext and writes it to the socket, the last
// span only once the digest matched. Nothing else: no index, no store, no
// registry. It runs the steps in one of three arrangements (?stages=1, 2
// or 3: all on the serving goroutine; reading and opening on a goroutine
// of their own; and reading, hashing and writing each on its own), and
// the scenario reports the best, so that what it shows is what this
// machine allows, not one design.

// sealChunk and sealSpan are the reference's format: 64 KiB of plaintext
// per chunk, each followed by its 16-byte tag, read 8 chunks at a time.
const (
	sealChunk = 64 << 10
	sealSpan  = 8
	sealTag   = 16
)

// sealedDir is where the reference finds sealed files and their key,
// under its directory.
const sealedDir = "sealed"

// sealFile writes the bytes of src to dst sealed in chunks with key; the
// nonce of a chunk is its index.
func sealFile(key []byte, src, dst string) error {
	a, err := sealAEAD(key)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	plain, sealed := make([]byte, sealChunk), make([]byte, 0, sealChunk+sealTag)
	nonce := make([]byte, a.NonceSize())
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(in, plain)
		if n > 0 {
			binary.BigEndian.PutUint64(nonce[4:], i)
			if _, werr := out.Write(a.Seal(sealed[:0], nonce, plain[:n], nil)); werr != nil {
				out.Close()
				return werr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

func sealAEAD(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// sealedSpan is one span in flight: its sealed bytes, its plaintext, and
// whether it is the blob's last.
type sealedSpan struct {
	sealed, plain []byte
	last          bool
	err           error
}

// sealedReader reads and opens a sealed file span by span.
type sealedReader struct {
	f     *os.File
	a     cipher.AEAD
	size  int64 // of the sealed file
	off   int64
	chunk uint64
	nonce []byte
}

// next fills sp with the next span.
func (r *sealedReader) next(sp *sealedSpan) {
	n := min(int64(len(sp.sealed)), r.size-r.off)
	if _, err := r.f.ReadAt(sp.sealed[:n], r.off); err != nil {
		sp.err = err
		return
	}
	r.off += n
	sp.plain, sp.last = sp.plain[:0], r.off == r.size
	for c := sp.sealed[:n]; len(c) > 0; r.chunk++ {
		k := min(len(c), sealChunk+sealTag)
		binary.BigEndian.PutUint64(r.nonce[4:], r.chunk)
		var err error
		if sp.plain, err = r.a.Open(sp.plain, r.nonce, c[:k], nil); err != nil {
			sp.err = fmt.Errorf("chunk %d: %w", r.chunk, err)
			return
		}
		c = c[k:]
	}
}

// sealedHandler serves dir/sealed/<hex> through the arrangement ?stages
// names, with the key in dir/sealed/key (hex).
func sealedHandler(dir string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/sealed/")
		want, err := hex.DecodeString(name)
		if err != nil || len(want) != sha256.Size {
			http.NotFound(w, r)
			return
		}
		keyHex, err := os.ReadFile(filepath.Join(dir, sealedDir, "key"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		key, err := hex.DecodeString(strings.TrimSpace(string(keyHex)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		a, err := sealAEAD(key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		f, err := os.Open(filepath.Join(dir, sealedDir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			http.Error(w, "empty", http.StatusInternalServerError)
			return
		}
		chunks := (st.Size() + sealChunk + sealTag - 1) / (sealChunk + sealTag)
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size()-chunks*sealTag, 10))
		rd := &sealedReader{f: f, a: a, size: st.Size(), nonce: make([]byte, a.NonceSize())}
		stages, _ := strconv.Atoi(r.URL.Query().Get("stages"))
		if err := serveSealed(w, rd, want, stages); err != nil {
			panic(http.ErrAbortHandler) // the client sees a cut stream
		}
	}
}

// serveSealed writes rd's plaintext to w in the arrangement stages names.
func serveSealed(w io.Writer, rd *sealedReader, want []byte, stages int) error {
	newSpan := func() *sealedSpan {
		return &sealedSpan{sealed: make([]byte, sealSpan*(sealChunk+sealTag)), plain: make([]byte, 0, sealSpan*sealChunk)}
	}
	h := sha256.New()
	check := func() error {
		if string(h.Sum(nil)) != string(want) {
			return errors.New("digest mismatch")
		}
		return nil
	}
	if stages <= 1 {
		sp := newSpan()
		for {
			if rd.next(sp); sp.err != nil {
				return sp.err
			}
			h.Write(sp.plain)
			if sp.last {
				if err := check(); err != nil {
					return err
				}
			}
			if _, err := w.Write(sp.plain); err != nil || sp.last {
				return err
			}
		}
	}
	done := make(chan struct{})
	defer close(done)
	free := make(chan *sealedSpan, 4)
	for range cap(free) {
		free <- newSpan()
	}
	// stage moves spans from in to out, doing work on each, until the
	// last or an error.
	stage := func(in <-chan *sealedSpan, work func(*sealedSpan)) <-chan *sealedSpan {
		out := make(chan *sealedSpan, 2)
		go func() {
			defer close(out)
			for {
				var sp *sealedSpan
				select {
				case sp = <-in:
				case <-done:
					return
				}
				if sp == nil {
					return
				}
				if sp.err == nil {
					work(sp)
				}
				select {
				case out <- sp:
				case <-done:
					return
				}
				if sp.last || sp.err != nil {
					return
				}
			}
		}()
		return out
	}
	opened := stage(free, rd.next)
	hash := func(sp *sealedSpan) {
		h.Write(sp.plain)
		if sp.last {
			sp.err = check()
		}
	}
	spans := opened
	if stages >= 3 {
		spans, hash = stage(opened, hash), nil
	}
	for sp := range spans {
		if sp.err == nil && hash != nil {
			hash(sp)
		}
		if sp.err != nil {
			return sp.err
		}
		if _, err := w.Write(sp.plain); err != nil || sp.last {
			return err
		}
		free <- sp
	}
	return errors.New("stream ended early")
}
