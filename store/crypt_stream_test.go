package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// spanBytes is the plaintext of one span of the pipeline.
const spanBytes = spanChunks * chunkSize

// ecOpenAt opens a committed blob's stream at off.
func ecOpenAt(t *testing.T, s *Store, d string, size, off int64) io.ReadCloser {
	t.Helper()
	rc, err := (&BlobFile{Store: s, Digest: d, Len: size}).Open(context.Background(), off)
	if err != nil {
		t.Fatalf("open %s at %d: %v", d, off, err)
	}
	return rc
}

// ecWriteTo sends a blob from off to its end through the stream's WriteTo
// (what io.Copy and the HTTP edge use) and returns what was written.
func ecWriteTo(t *testing.T, s *Store, d string, size, off int64) ([]byte, error) {
	t.Helper()
	rc := ecOpenAt(t, s, d, size, off)
	defer rc.Close()
	var buf bytes.Buffer
	n, err := rc.(io.WriterTo).WriteTo(&buf)
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reports %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes(), err
}

// pipelineGoroutines counts the goroutines running a pipeline's reader
// or hasher.
func pipelineGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return bytes.Count(buf[:n], []byte("store.(*pipeline)."))
}

// pipelineGoroutinesLeft counts them once those that were joined have
// had the chance to return (WriteTo waits for them to be done, which is
// just before their last frame goes).
func pipelineGoroutinesLeft() int {
	n := pipelineGoroutines()
	for i := 0; n > 0 && i < 1000; i++ {
		runtime.Gosched()
		n = pipelineGoroutines()
	}
	return n
}

// TestEncryptedWriteTo sends blobs of one chunk to more spans than the
// ring holds, from offsets at every edge of the layout.
func TestEncryptedWriteTo(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	for _, size := range []int{1, chunkSize, spanBytes, spanBytes + 1, 3*spanBytes + chunkSize + 7, (spanRing+3)*spanBytes + 5} {
		data := stBytes(size, uint64(size)+100)
		d := ecCommit(t, s, data)
		for _, off := range []int{0, 1, chunkSize - 1, chunkSize + 3, spanBytes, spanBytes + 1, size / 2, size - chunkSize - 1, size - 1} {
			if off < 0 || off >= size {
				continue
			}
			got, err := ecWriteTo(t, s, d, int64(size), int64(off))
			if err != nil || !bytes.Equal(got, data[off:]) {
				t.Errorf("size %d from %d: %d bytes, %v; want %d", size, off, len(got), err, size-off)
			}
		}
	}
}

// TestEncryptedLargeReads: a Read larger than a chunk is filled across
// chunk boundaries, and a Read part way followed by WriteTo (io.Copy after
// a peek) gives the rest, still checked against the digest.
func TestEncryptedLargeReads(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	size := 3*spanBytes + 77
	data := stBytes(size, 9)
	d := ecCommit(t, s, data)
	for _, off := range []int{0, 5, chunkSize - 2} {
		for _, n := range []int{chunkSize + 1, 3*chunkSize + 5, 2 * spanBytes} {
			rc := ecOpenAt(t, s, d, int64(size), int64(off))
			var got []byte
			for {
				p := make([]byte, n)
				k, err := rc.Read(p)
				if want := min(n, size-off-len(got)); err == nil && k != want {
					t.Fatalf("from %d, Read(%d) = %d bytes, want %d", off, n, k, want)
				}
				got = append(got, p[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("from %d, Read(%d): %v", off, n, err)
				}
			}
			rc.Close()
			if !bytes.Equal(got, data[off:]) {
				t.Errorf("from %d in reads of %d: %d bytes differ from the blob's %d", off, n, len(got), size-off)
			}
		}
	}
	for _, first := range []int{1000, chunkSize, chunkSize + 1, spanBytes + 3} {
		rc := ecOpenAt(t, s, d, int64(size), 0)
		head := make([]byte, first)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatal(err)
		}
		var rest bytes.Buffer
		_, err := io.Copy(&rest, rc)
		rc.Close()
		if err != nil || !bytes.Equal(append(head, rest.Bytes()...), data) {
			t.Errorf("read %d, then copied %d bytes: %v", first, rest.Len(), err)
		}
	}
}

// TestEncryptedDigestCheckedPipelined: a whole read through the pipeline
// whose chunks authenticate but hash to another digest fails before its
// final bytes go out, and the blob is quarantined; so does a read that
// began with Read and went on with WriteTo.
func TestEncryptedDigestCheckedPipelined(t *testing.T) {
	size := 3*spanBytes + 5
	data := stBytes(size, 4)
	for _, peek := range []int{0, chunkSize + 9} {
		s := ecOpen(t, t.TempDir(), testKey)
		other := ecMisindex(t, s, ecCommit(t, s, data))
		rc := ecOpenAt(t, s, other, int64(size), 0)
		head := make([]byte, peek)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatal(err)
		}
		var rest bytes.Buffer
		_, err := io.Copy(&rest, rc)
		rc.Close()
		got := append(head, rest.Bytes()...)
		if !errors.Is(err, ErrCorrupt) || len(got) > size-5 || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("after %d bytes read: %d bytes written, %v; want ErrCorrupt before the final chunk", peek, len(got), err)
		}
		if _, err := s.StatBlob(context.Background(), other); !errors.Is(err, ErrNotFound) {
			t.Errorf("StatBlob after the mismatch = %v, want ErrNotFound", err)
		}
		if q := stFiles(t, filepath.Join(s.Dir(), "quarantine")); len(q) != 1 {
			t.Errorf("quarantine holds %q", q)
		}
	}
}

// TestEncryptedDamageDetectedPipelined: a damaged chunk in the middle of
// a span, or a file cut short, fails the pipelined read with nothing of
// the damaged chunk sent, and quarantines the blob.
func TestEncryptedDamageDetectedPipelined(t *testing.T) {
	size := 3*spanBytes + 10
	bad := spanChunks + 1 // a chunk in the middle of the second span
	at := headerSize + bad*sealedChunk
	for _, tt := range []struct {
		name   string
		f      func([]byte) []byte
		served int
	}{
		{"byte in span 2", func(b []byte) []byte { b[at+7] ^= 1; return b }, bad * chunkSize},
		{"final chunk cut", func(b []byte) []byte { return b[:len(b)-tagSize-3] }, size - 10},
		{"cut in span 2", func(b []byte) []byte { return b[:at+100] }, bad * chunkSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := ecOpen(t, t.TempDir(), testKey)
			data := stBytes(size, 8)
			d := ecCommit(t, s, data)
			ecDamage(t, s, d, tt.f)
			got, err := ecWriteTo(t, s, d, int64(size), 0)
			if !errors.Is(err, ErrCorrupt) || len(got) > tt.served || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("WriteTo = %d bytes, %v; want ErrCorrupt after at most %d good bytes", len(got), err, tt.served)
			}
			if q := stFiles(t, filepath.Join(s.Dir(), "quarantine")); len(q) != 1 {
				t.Errorf("quarantine holds %q", q)
			}
		})
	}
}

// failingWriter takes a few writes, checking the pipeline is running, and
// then fails as a client that went away; close, when set, is called first.
type failingWriter struct {
	t       *testing.T
	left    int
	running bool
	close   func()
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if pipelineGoroutines() > 0 {
		w.running = true
	}
	if w.left == 0 {
		if w.close != nil {
			w.close()
		}
		return 0, errors.New("connection reset by peer")
	}
	w.left--
	return len(p), nil
}

// TestEncryptedWriteToStops: a client that goes away mid-stream, with the
// stream closed under it or not, leaves no reader or hasher behind; Close
// is safe before, during and after a read, and again.
func TestEncryptedWriteToStops(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	size := (spanRing + 4) * spanBytes
	d := ecCommit(t, s, stBytes(size, 6))
	for _, tt := range []struct {
		name     string
		off      int64
		writes   int
		closeMid bool
	}{
		{"hashing, first write fails", 0, 0, false},
		{"hashing, fails part way", 0, 3, false},
		{"range, fails part way", chunkSize + 1, 2, false},
		{"closed under the write", 0, 2, true},
	} {
		rc := ecOpenAt(t, s, d, int64(size), tt.off)
		w := &failingWriter{t: t, left: tt.writes}
		if tt.closeMid {
			w.close = func() { rc.Close() }
		}
		n, err := rc.(io.WriterTo).WriteTo(w)
		if err == nil || n >= int64(size)-tt.off {
			t.Errorf("%s: WriteTo = %d, %v; want the writer's error", tt.name, n, err)
		}
		if !w.running {
			t.Errorf("%s: no pipeline ran", tt.name)
		}
		if g := pipelineGoroutinesLeft(); g != 0 {
			t.Errorf("%s: %d pipeline goroutines left after WriteTo returned", tt.name, g)
		}
		if _, err := rc.(io.WriterTo).WriteTo(io.Discard); err == nil {
			t.Errorf("%s: a second WriteTo after the failure succeeded", tt.name)
		}
		rc.Close()
		rc.Close()
	}
	ecOpenAt(t, s, d, int64(size), 0).Close()
}

// TestEncryptedFollowLarge: readers of a fill of several spans still read
// it as it is written (the follower is not the pipelined stream), and
// once committed the blob reads whole through the pipeline.
func TestEncryptedFollowLarge(t *testing.T) {
	s := ecOpen(t, t.TempDir(), testKey)
	data := stBytes(2*spanBytes+300, 12)
	w, r := ecFollow(t, s, data, 50000, func(written int) []int {
		return []int{0, max(0, written-spanBytes-3), written - 1}
	})
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if n, err := r.ReadAt(buf, 0); n != len(buf) || !bytes.Equal(buf, data) {
		t.Fatalf("follower after the commit: ReadAt = %d, %v", n, err)
	}
	if got, err := ecWriteTo(t, s, stSHA256(data), int64(len(data)), 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed blob through the pipeline: %d bytes, %v", len(got), err)
	}
}

// BenchmarkEncryptedWarmRead reads a 64 MiB encrypted blob whole, as a
// warm pull does, without the network: through Read into 64 KiB (one
// chunk after the other on one goroutine) and through WriteTo (the
// pipeline).
func BenchmarkEncryptedWarmRead(b *testing.B) {
	s := sbOpen(b, Options{Encryption: &Encryption{Key: testKey, KeyFile: "k1", All: true}})
	data, d := sbBlob(sbBlobSize, 3)
	sbWrite(b, s, d, data)
	for _, bc := range []struct {
		name string
		copy func(io.Reader) error
	}{
		{"Read", func(r io.Reader) error {
			_, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, make([]byte, 64<<10))
			return err
		}},
		{"WriteTo", func(r io.Reader) error { _, err := r.(io.WriterTo).WriteTo(io.Discard); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			cpu0 := processCPU()
			for b.Loop() {
				rc, _, err := s.OpenBlob(context.Background(), d)
				if err != nil {
					b.Fatal(err)
				}
				err = bc.copy(rc)
				rc.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
			gb := float64(b.N) * float64(len(data)) / 1e9
			b.ReportMetric(float64((processCPU()-cpu0).Milliseconds())/gb, "cpu-ms/GB")
		})
	}
}

// processCPU is the CPU time the test process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}
