package store

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// FuzzSealedRange seals a blob of any size in chunks and reads a range of
// it back, at any offset: the bytes are the plaintext's, across chunk
// boundaries, and a range past the end is io.EOF.
func FuzzSealedRange(f *testing.F) {
	f.Add(uint32(0), uint32(0), uint32(1), byte(1))
	f.Add(uint32(chunkSize), uint32(chunkSize-1), uint32(2), byte(2))
	f.Add(uint32(3*chunkSize+5), uint32(chunkSize+3), uint32(2*chunkSize), byte(3))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, size, off, n uint32, seed byte) {
		size %= 4*chunkSize + 17
		n %= 3*chunkSize + 1
		data := stBytes(int(size), uint64(seed))
		file, err := os.CreateTemp(dir, "sealed")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file.Name())
		defer file.Close()
		dk, id := newDataKey(), newDataKey()[:fileIDSize]
		s, err := newSealer(file, dk, id)
		if err != nil {
			t.Fatal(err)
		}
		// Write in uneven pieces.
		for rest := data; len(rest) > 0; {
			k := min(len(rest), 1+int(seed)*97)
			if err := s.write(rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		if st, _ := file.Stat(); st.Size() != sealedLen(int64(size)) {
			t.Fatalf("sealed file is %d bytes, want %d", st.Size(), sealedLen(int64(size)))
		}
		r, err := os.Open(file.Name())
		if err != nil {
			t.Fatal(err)
		}
		c, err := newSealedFile(r, dk, id, int64(size))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.corrupt = func(i int64) error { t.Fatalf("chunk %d does not open", i); return nil }
		buf := make([]byte, n)
		got, err := c.ReadAt(buf, int64(off))
		end := min(int(off)+int(n), int(size))
		want := []byte{}
		if int(off) < int(size) {
			want = data[off:end]
		}
		if !bytes.Equal(buf[:got], want) || (got < int(n)) != (err == io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) of %d = %d, %v", n, off, size, got, err)
		}
		if int(off) <= int(size) {
			st := &blobStream{c: c, off: int64(off)}
			rest, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(rest, data[off:]) {
				t.Fatalf("stream from %d of %d: %d bytes, %v", off, size, len(rest), err)
			}
		}
	})
}
