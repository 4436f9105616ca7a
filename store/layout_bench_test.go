//go:build unix

package store

// Design benchmark for "where layer bytes live" (see docs/design.md).
//
//	(A) pebble: the blob is split into 1 MiB chunks stored as values under
//	    <digest>/<big-endian uint64 chunk index>, with pebble's value separation
//	    enabled so the large values go to blob files instead of being rewritten
//	    by every compaction. A <digest> key holds the size.
//	(B) files: the blob is written to a temp file while hashing, fsynced,
//	    renamed to blobs/sha256/<2 hex>/<hex>, the directory fsynced, and a
//	    <digest> index entry is Set in pebble with Sync.
//
// The blob size is BERTH_LAYOUT_BENCH_SIZE bytes (default 64 MiB). The data is
// streamed from a deterministic PRNG in 1 MiB pieces and never held in memory
// as a whole.
//
//	BERTH_LAYOUT_BENCH_SIZE=1073741824 go test ./store/ -run XXX -bench Layout -benchtime 3x -count 3 -timeout 60m
//
// Extra metrics: ack-MB/s (write: throughput up to the point the blob is
// durable and could be acknowledged; for pebble this excludes the memtable
// flush), cpu-ns/B (process CPU, via getrusage, hence the unix build tag),
// disk/blob (bytes on disk right after the write, per blob byte).

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	layoutBenchChunk       = 1 << 20      // chunk size for pebble values and for streaming
	layoutBenchDefaultSize = 64 << 20     // keeps a plain `go test -bench` short
	layoutBenchSeed        = 0x6265727468 // "berth"
)

// layoutBenchSize returns the blob size from BERTH_LAYOUT_BENCH_SIZE.
func layoutBenchSize(b *testing.B) int64 {
	s := os.Getenv("BERTH_LAYOUT_BENCH_SIZE")
	if s == "" {
		return layoutBenchDefaultSize
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("BERTH_LAYOUT_BENCH_SIZE=%q: want a positive byte count", s)
	}
	return n
}

// layoutBenchPRNG is a deterministic, fast pseudo-random io.Reader of a fixed
// length (splitmix64). The output does not depend on the read sizes. Random
// bytes are incompressible, like real (gzip/zstd) layers.
type layoutBenchPRNG struct {
	state     uint64
	remaining int64
	carry     [8]byte
	carryN    int // unread bytes at the end of carry
}

func newLayoutBenchPRNG(seed uint64, size int64) *layoutBenchPRNG {
	return &layoutBenchPRNG{state: seed, remaining: size}
}

func (r *layoutBenchPRNG) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *layoutBenchPRNG) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n := 0
	if r.carryN > 0 {
		c := copy(p, r.carry[8-r.carryN:])
		r.carryN -= c
		n += c
	}
	for ; n+8 <= len(p); n += 8 {
		binary.LittleEndian.PutUint64(p[n:], r.next())
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(r.carry[:], r.next())
		c := copy(p[n:], r.carry[:])
		r.carryN = 8 - c
		n += c
	}
	r.remaining -= int64(n)
	return n, nil
}

var (
	layoutBenchDigestMu    sync.Mutex
	layoutBenchDigestCache = map[int64]string{}
)

// layoutBenchDigest returns the "sha256:<hex>" digest of the PRNG stream of the
// given size, as the registry would know it from the pull request.
func layoutBenchDigest(b testing.TB, size int64) string {
	layoutBenchDigestMu.Lock()
	defer layoutBenchDigestMu.Unlock()
	if d, ok := layoutBenchDigestCache[size]; ok {
		return d
	}
	h := sha256.New()
	buf := make([]byte, layoutBenchChunk)
	if _, err := io.CopyBuffer(h, newLayoutBenchPRNG(layoutBenchSeed, size), buf); err != nil {
		b.Fatal(err)
	}
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	layoutBenchDigestCache[size] = d
	return d
}

// layoutBenchStore is one candidate layout.
type layoutBenchStore interface {
	// write streams size bytes from r, verifying them against digest, and
	// returns once the blob is durable. ack is the time at which the client
	// could have been told "stored" (before any deferred background work).
	write(digest string, r io.Reader, size int64, buf []byte) (ack time.Time, err error)
	// copyTo writes the whole blob to w.
	copyTo(digest string, w io.Writer) (int64, error)
	close() error
}

func layoutBenchOpenStore(b testing.TB, kind, dir string) layoutBenchStore {
	var (
		s   layoutBenchStore
		err error
	)
	switch kind {
	case "pebble":
		s, err = layoutBenchOpenPebbleStore(dir)
	case "files":
		s, err = layoutBenchOpenFileStore(dir)
	default:
		err = fmt.Errorf("unknown layout %q", kind)
	}
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var errLayoutBenchDigest = errors.New("layout bench: digest mismatch")

// layoutBenchQuietLogger keeps pebble's informational logging out of the
// benchmark output.
type layoutBenchQuietLogger struct{}

func (layoutBenchQuietLogger) Infof(string, ...any) {}
func (layoutBenchQuietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (layoutBenchQuietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// ---- helpers ----

// layoutBenchSink counts bytes; it deliberately has no ReadFrom so that
// io.Copy goes through the source's ordinary read path.
type layoutBenchSink struct{ n int64 }

func (s *layoutBenchSink) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	return len(p), nil
}

// layoutBenchCPU returns the user+system CPU time used by the process so far
// (all goroutines: pebble's background work and the TCP receiver included).
func layoutBenchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// layoutBenchReportCPU reports CPU nanoseconds spent per byte of blob.
func layoutBenchReportCPU(b *testing.B, cpu time.Duration, size int64) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(size)/float64(b.N), "cpu-ns/B")
}

func layoutBenchDiskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// layoutBenchPrepared opens a store in a fresh temp dir and writes the blob
// once, untimed.
func layoutBenchPrepared(b *testing.B, kind string, size int64) (layoutBenchStore, string) {
	digest := layoutBenchDigest(b, size)
	s := layoutBenchOpenStore(b, kind, b.TempDir())
	b.Cleanup(func() { s.close() })
	buf := make([]byte, layoutBenchChunk)
	if _, err := s.write(digest, newLayoutBenchPRNG(layoutBenchSeed, size), size, buf); err != nil {
		b.Fatal(err)
	}
	if ps, ok := s.(*layoutBenchPebbleStore); ok {
		// Let background compactions settle so they do not run in the timed
		// loop.
		for deadline := time.Now().Add(time.Minute); ps.db.Metrics().Compact.NumInProgress > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		m := ps.db.Metrics()
		b.Logf("pebble: %d blob files, %d MiB referenced values (value separation on)",
			m.BlobFiles.LiveCount, m.BlobFiles.ReferencedValueSize>>20)
	}
	return s, digest
}

var layoutBenchKinds = []string{"pebble", "files"}

// ---- benchmarks ----

func BenchmarkLayoutWrite(b *testing.B) {
	size := layoutBenchSize(b)
	digest := layoutBenchDigest(b, size)
	for _, kind := range layoutBenchKinds {
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			buf := make([]byte, layoutBenchChunk)
			var ackTotal, cpu time.Duration
			var disk int64
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				s := layoutBenchOpenStore(b, kind, dir)
				src := newLayoutBenchPRNG(layoutBenchSeed, size)
				b.StartTimer()
				start, cpu0 := time.Now(), layoutBenchCPU()
				ack, err := s.write(digest, src, size, buf)
				cpu += layoutBenchCPU() - cpu0
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				ackTotal += ack.Sub(start)
				if err := s.close(); err != nil {
					b.Fatal(err)
				}
				disk += layoutBenchDiskUsage(dir)
				os.RemoveAll(dir)
			}
			if ackTotal > 0 {
				b.ReportMetric(float64(size)*float64(b.N)/1e6/ackTotal.Seconds(), "ack-MB/s")
			}
			b.ReportMetric(float64(disk)/float64(size)/float64(b.N), "disk/blob")
			layoutBenchReportCPU(b, cpu, size)
		})
	}
}

func BenchmarkLayoutRead(b *testing.B) {
	size := layoutBenchSize(b)
	for _, kind := range layoutBenchKinds {
		b.Run(kind, func(b *testing.B) {
			s, digest := layoutBenchPrepared(b, kind, size)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := layoutBenchCPU()
			for i := 0; i < b.N; i++ {
				var sink layoutBenchSink
				if _, err := s.copyTo(digest, &sink); err != nil {
					b.Fatal(err)
				}
			}
			layoutBenchReportCPU(b, layoutBenchCPU()-cpu0, size)
		})
	}
}

// BenchmarkLayoutServeTCP sends the blob over a loopback TCP connection, as
// the registry does when serving a layer. The time includes the receiver
// having read every byte.
func BenchmarkLayoutServeTCP(b *testing.B) {
	size := layoutBenchSize(b)
	for _, kind := range layoutBenchKinds {
		b.Run(kind, func(b *testing.B) {
			s, digest := layoutBenchPrepared(b, kind, size)
			send, want, done := layoutBenchLoopback(b)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := layoutBenchCPU()
			for i := 0; i < b.N; i++ {
				want <- size
				if _, err := s.copyTo(digest, send); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			layoutBenchReportCPU(b, layoutBenchCPU()-cpu0, size)
		})
	}
}

// layoutBenchLoopback returns the sending end of a loopback TCP connection.
// For every size sent on want, the receiver reads exactly that many bytes and
// then reports on done.
func layoutBenchLoopback(b *testing.B) (*net.TCPConn, chan<- int64, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	send, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	recv := <-accepted
	if recv == nil {
		b.Fatal("loopback accept failed")
	}
	want := make(chan int64)
	done := make(chan error)
	buf := make([]byte, layoutBenchChunk)
	go func() {
		for n := range want {
			var got int64
			var err error
			for got < n && err == nil {
				var m int
				m, err = recv.Read(buf[:min(int64(len(buf)), n-got)])
				got += int64(m)
			}
			done <- err
		}
	}()
	b.Cleanup(func() {
		close(want)
		send.Close()
		recv.Close()
	})
	return send.(*net.TCPConn), want, done
}

// TestLayoutBenchRoundTrip checks the benchmark's own machinery on a small,
// odd-sized blob: the PRNG does not depend on read sizes, and both layouts
// give back exactly the bytes that were written.
func TestLayoutBenchRoundTrip(t *testing.T) {
	const size = 3*layoutBenchChunk + 13
	want := layoutBenchDigest(t, size)

	h := sha256.New()
	r := newLayoutBenchPRNG(layoutBenchSeed, size)
	p := make([]byte, 7)
	for i := 0; ; i++ {
		n, err := r.Read(p[:1+i%len(p)]) // 1..7 bytes, never word-aligned for long
		h.Write(p[:n])
		if err == io.EOF {
			break
		}
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("PRNG depends on read sizes: %s != %s", got, want)
	}

	for _, kind := range layoutBenchKinds {
		s := layoutBenchOpenStore(t, kind, t.TempDir())
		buf := make([]byte, layoutBenchChunk)
		if _, err := s.write(want, newLayoutBenchPRNG(layoutBenchSeed+1, size), size, buf); err != errLayoutBenchDigest {
			t.Fatalf("%s: write of wrong bytes: got %v, want digest mismatch", kind, err)
		}
		if _, err := s.write(want, newLayoutBenchPRNG(layoutBenchSeed, size), size, buf); err != nil {
			t.Fatalf("%s: write: %v", kind, err)
		}
		h := sha256.New()
		if n, err := s.copyTo(want, h); err != nil || n != size {
			t.Fatalf("%s: copyTo: n=%d err=%v", kind, n, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
			t.Fatalf("%s: read back %s, want %s", kind, got, want)
		}
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
	}
}
