package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestEncryptedSpanTails: spans are opened in place, each chunk's tag
// read behind its ciphertext where the next chunk's plaintext goes; a
// final chunk shorter than a tag, as long as one, or a little longer, in
// a span of one chunk or several, reads back whole from every offset.
func TestEncryptedSpanTails(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	for _, tail := range []int{1, tagSize - 1, tagSize, tagSize + 1, 2*tagSize - 1, 2 * tagSize, chunkSize - 1} {
		for _, size := range []int{spanBytes + tail, spanBytes + chunkSize + tail, 2*spanBytes - chunkSize + tail} {
			data := stBytes(size, uint64(size))
			d := ecCommit(t, s, data)
			for _, off := range []int{0, 3, size - tail - chunkSize - 1, size - tail} {
				got, err := ecWriteTo(t, s, d, int64(size), int64(off))
				if err != nil || !bytes.Equal(got, data[off:]) {
					t.Errorf("size %d from %d: %d bytes, %v; want %d", size, off, len(got), err, size-off)
				}
			}
		}
	}
}

// TestEncryptedInPlaceDamage: a flipped byte anywhere in a span is caught
// by the chunk it belongs to, whether it lies in what is read aside (a
// chunk's first bytes), in a tag a later chunk's bytes replace once it
// has opened, or in the tag of a short final chunk; nothing of the
// damaged chunk goes out.
func TestEncryptedInPlaceDamage(t *testing.T) {
	size := 2*spanBytes + chunkSize + 9 // the final span: a chunk and 9 bytes
	chunkAt := func(i int) int { return headerSize + i*sealedChunk }
	for _, tt := range []struct {
		name  string
		at    int
		chunk int // the first chunk that must not be served
	}{
		{"first byte of a chunk", chunkAt(spanChunks + 2), spanChunks + 2},
		{"last byte of its head", chunkAt(spanChunks+2) + tagSize - 1, spanChunks + 2},
		{"first byte after its head", chunkAt(spanChunks+2) + tagSize, spanChunks + 2},
		{"tag of the chunk before", chunkAt(spanChunks+2) - 1, spanChunks + 1},
		{"tag of a span's last chunk", chunkAt(2*spanChunks) - tagSize, 2*spanChunks - 1},
		{"first byte of a span", chunkAt(spanChunks), spanChunks},
		{"short final chunk", chunkAt(2*spanChunks+1) + 4, 2*spanChunks + 1},
		{"tag of the short final chunk", chunkAt(2*spanChunks+1) + 9 + 3, 2*spanChunks + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := ecOpen(t, t.TempDir(), testKey)
			data := stBytes(size, 21)
			d := ecCommit(t, s, data)
			ecDamage(t, s, d, func(b []byte) []byte { b[tt.at] ^= 0x80; return b })
			got, err := ecWriteTo(t, s, d, int64(size), 0)
			if !errors.Is(err, ErrCorrupt) || len(got) > tt.chunk*chunkSize || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("WriteTo = %d bytes, %v; want ErrCorrupt after at most %d good bytes", len(got), err, tt.chunk*chunkSize)
			}
			if q := stFiles(t, filepath.Join(s.Dir(), "quarantine")); len(q) != 1 {
				t.Errorf("quarantine holds %q", q)
			}
		})
	}
}

// changingWriter changes the blob file on disk at its first write, while
// the pipeline is reading ahead.
type changingWriter struct {
	change func()
	n      int
}

func (w *changingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		w.change()
	}
	w.n += len(p)
	return len(p), nil
}

// TestEncryptedChangedUnderRead: a blob file cut short or overwritten on
// disk while a whole read is under way fails that read with ErrCorrupt,
// before the changed part and without a crash, and leaves no pipeline
// goroutine behind.
func TestEncryptedChangedUnderRead(t *testing.T) {
	size := (spanRing + 4) * spanBytes
	far := headerSize + (spanRing+2)*spanChunks*sealedChunk + 1000 // beyond what the ring reads ahead
	for _, tt := range []struct {
		name   string
		change func(path string) error
	}{
		{"truncated", func(p string) error { return os.Truncate(p, int64(far)) }},
		{"truncated to nothing", func(p string) error { return os.Truncate(p, 0) }},
		{"overwritten", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 100), int64(far))
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := ecOpen(t, t.TempDir(), testKey)
			data := stBytes(size, 22)
			d := ecCommit(t, s, data)
			path := stBlobPath(s, d)
			rc := ecOpenAt(t, s, d, int64(size), 0)
			defer rc.Close()
			var sent bytes.Buffer
			w := &changingWriter{change: func() {
				if err := tt.change(path); err != nil {
					t.Error(err)
				}
			}}
			n, err := rc.(io.WriterTo).WriteTo(io.MultiWriter(w, &sent))
			if !errors.Is(err, ErrCorrupt) || n >= int64(size) || !bytes.Equal(sent.Bytes(), data[:n]) {
				t.Fatalf("WriteTo = %d bytes, %v; want ErrCorrupt before the end, all it sent good", n, err)
			}
			if g := pipelineGoroutinesLeft(); g != 0 {
				t.Errorf("%d pipeline goroutines left", g)
			}
		})
	}
}
