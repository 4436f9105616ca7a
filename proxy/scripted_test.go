package proxy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"berth/test/testreg"
	"berth/upstream"
)

// stream is what one open of a scriptedSource does.
type stream struct {
	// openErr fails the open itself.
	openErr error
	// size is the blob size the open reports (0: the real one).
	size int64
	// breakAt, when > 0, is the offset at which the stream breaks with
	// breakErr (io.ErrUnexpectedEOF when nil).
	breakAt  int64
	breakErr error
	// hold, when set, pauses the stream before the byte at holdAt until
	// hold is closed.
	hold   <-chan struct{}
	holdAt int64
}

// scriptedSource is a source that serves a blob from memory, each open as
// the next stream of its script says (opens past the script stream the
// blob whole), and records what every open asked for. It stands in for the
// upstream or a peer, so the fill and resume logic is tested exactly,
// without a network.
type scriptedSource struct {
	name   string
	peer   bool
	data   []byte
	script []stream

	mu    sync.Mutex
	opens []string // "off-last" of every open
	heads int      // how often head was asked
}

func (s *scriptedSource) String() string { return "scripted " + s.name }
func (s *scriptedSource) isPeer() bool   { return s.peer }

func (s *scriptedSource) head(context.Context) (int64, error) {
	s.mu.Lock()
	s.heads++
	s.mu.Unlock()
	return int64(len(s.data)), nil
}

// asked returns how often the source was opened or asked for the size.
func (s *scriptedSource) asked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opens) + s.heads
}

func (s *scriptedSource) open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	i := len(s.opens)
	s.opens = append(s.opens, fmt.Sprintf("%d-%d", off, last))
	s.mu.Unlock()
	var st stream
	if i < len(s.script) {
		st = s.script[i]
	}
	if st.openErr != nil {
		return nil, -1, st.openErr
	}
	end := int64(len(s.data))
	if last >= 0 {
		end = last + 1
	}
	size := int64(len(s.data))
	if st.size != 0 {
		size = st.size
	}
	return &scriptedStream{ctx: ctx, data: s.data, off: off, end: end, st: st}, size, nil
}

// opened returns what every open asked for so far.
func (s *scriptedSource) opened() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.opens...)
}

// scriptedStream sends data[off:end] in pieces of at most 64 KiB.
type scriptedStream struct {
	ctx      context.Context
	data     []byte
	off, end int64
	st       stream
}

func (r *scriptedStream) Read(p []byte) (int, error) {
	limit := r.end
	if r.st.breakAt > 0 && r.st.breakAt < limit {
		limit = r.st.breakAt
	}
	if r.st.hold != nil && r.off == r.st.holdAt {
		select {
		case <-r.st.hold:
			r.st.hold = nil
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	if r.st.hold != nil && r.st.holdAt > r.off && r.st.holdAt < limit {
		limit = r.st.holdAt
	}
	if r.off >= limit {
		if r.off < r.end {
			return 0, cmp.Or(r.st.breakErr, io.ErrUnexpectedEOF)
		}
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 64<<10)], r.data[r.off:limit])
	r.off += int64(n)
	return n, nil
}

func (r *scriptedStream) Close() error { return nil }

// runScriptedFill fills data's digest from srcs in e's proxy, as a request
// for a blob the store lacks does, and returns the fill.
func (e *env) runScriptedFill(t *testing.T, data []byte, srcs ...source) *fill {
	t.Helper()
	t1 := upstream.Target{Upstream: e.proxy.Router().Upstream("up"), Repo: "team/app"}
	d := digestOf(data)
	return e.proxy.fills.join(fillKey(t1, d), d, func(f *fill) { e.proxy.runFill(f, t1.Upstream, origin(t1), srcs) })
}

// readFill reads the whole of f from off, as a client of the fill does
// once the fill started.
func (e *env) readFill(f *fill, off int64) ([]byte, error) {
	if _, err := f.waitStarted(context.Background()); err != nil {
		return nil, err
	}
	rc, err := (&fillBlob{p: e.proxy, f: f}).Open(context.Background(), off)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// waitFill waits for f to end and returns its error.
func waitFill(f *fill) error {
	for {
		f.mu.Lock()
		done, err, ch := f.done, f.err, f.changed
		f.mu.Unlock()
		if done {
			return err
		}
		<-ch
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// stored reports whether the store holds digest d.
func (e *env) stored(d string) bool {
	_, err := e.store.StatBlob(context.Background(), d)
	return err == nil
}

// Every stream the script breaks is resumed with a Range at the byte the
// fill reached, up to maxResumes times from the upstream; from a peer the
// fill moves on to the next source at once.
func TestFillResumesBrokenStreams(t *testing.T) {
	const size = 1 << 20
	data := testreg.Bytes(size, 41)
	full := fmt.Sprintf("0-%d", -1)
	rest := func(off int) string { return fmt.Sprintf("%d-%d", off, size-1) }
	timeout := fmt.Errorf("idle: %w", upstream.ErrTimeout)
	tests := []struct {
		name    string
		peer    []stream // nil: no peer ahead of the upstream
		up      []stream
		wantErr string // "" : the blob is stored
		// opens each source saw
		wantPeer, wantUp []string
	}{
		{name: "one break", up: []stream{{breakAt: 300_000}},
			wantUp: []string{full, rest(300_000)}},
		{name: "breaks up to the limit", up: []stream{{breakAt: 100}, {breakAt: 200}, {breakAt: 300}},
			wantUp: []string{full, rest(100), rest(200)}, wantErr: "stream broke at 300"},
		{name: "two breaks then whole", up: []stream{{breakAt: 100}, {breakAt: 200}},
			wantUp: []string{full, rest(100), rest(200)}},
		{name: "an idle timeout is resumed once", up: []stream{{breakAt: 100, breakErr: timeout}, {breakAt: 200, breakErr: timeout}},
			wantUp: []string{full, rest(100)}, wantErr: "stream broke at 200"},
		{name: "a resume that reports another size fails", up: []stream{{breakAt: 100}, {size: size + 1}},
			wantUp: []string{full, rest(100)}, wantErr: fmt.Sprintf("as %d bytes, not %d", size+1, size)},
		{name: "a broken peer hands over to the upstream", peer: []stream{{breakAt: 500_000}},
			wantPeer: []string{full}, wantUp: []string{rest(500_000)}},
		{name: "a peer that does not answer", peer: []stream{{openErr: errors.New("connection refused")}},
			wantPeer: []string{full}, wantUp: []string{full}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			up := &scriptedSource{name: "upstream", data: data, script: tt.up}
			var srcs []source
			var peer *scriptedSource
			if tt.peer != nil {
				peer = &scriptedSource{name: "peer", peer: true, data: data, script: tt.peer}
				srcs = append(srcs, peer)
			}
			srcs = append(srcs, up)
			f := e.runScriptedFill(t, data, srcs...)
			got, rerr := e.readFill(f, 0)
			err := waitFill(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || rerr == nil {
					t.Fatalf("fill err = %v, reader err = %v; want %q for both", err, rerr, tt.wantErr)
				}
				if len(got) >= size {
					t.Fatalf("a reader got all %d bytes of a failed fill", len(got))
				}
				if e.stored(digestOf(data)) {
					t.Fatal("a failed fill was kept")
				}
			} else {
				if err != nil || rerr != nil || string(got) != string(data) {
					t.Fatalf("fill err = %v, reader err = %v, %d bytes; want the blob", err, rerr, len(got))
				}
				if !e.stored(digestOf(data)) {
					t.Fatal("the filled blob is not in the store")
				}
			}
			if peer != nil && !slices.Equal(peer.opened(), tt.wantPeer) {
				t.Errorf("the peer was asked for %q, want %q", peer.opened(), tt.wantPeer)
			}
			if !slices.Equal(up.opened(), tt.wantUp) {
				t.Errorf("the upstream was asked for %q, want %q", up.opened(), tt.wantUp)
			}
		})
	}
}

// Readers that join a fill follow its bytes as they arrive: every one of
// them reads the first part while the rest is still held back at the
// source, and all get the whole blob from one open.
func TestFillSharedByReaders(t *testing.T) {
	const size, half, readers = 1 << 20, 1 << 19, 8
	data := testreg.Bytes(size, 42)
	e := newEnv(t, envOpts{})
	release := make(chan struct{})
	src := &scriptedSource{name: "upstream", data: data, script: []stream{{hold: release, holdAt: half}}}
	f := e.runScriptedFill(t, data, src)
	if _, err := f.waitStarted(context.Background()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		got []byte
		err error
	}
	results := make(chan result, readers)
	firstHalf := make(chan struct{}, readers)
	for range readers {
		go func() {
			rc, err := (&fillBlob{p: e.proxy, f: f}).Open(context.Background(), 0)
			if err != nil {
				results <- result{err: err}
				firstHalf <- struct{}{}
				return
			}
			defer rc.Close()
			got := make([]byte, half-1) // the last byte written waits for verification
			_, err = io.ReadFull(rc, got)
			firstHalf <- struct{}{}
			if err == nil {
				var more []byte
				more, err = io.ReadAll(rc)
				got = append(got, more...)
			}
			results <- result{got, err}
		}()
	}
	for range readers {
		<-firstHalf // the source still holds the second half
	}
	close(release)
	for range readers {
		r := <-results
		if r.err != nil || string(r.got) != string(data) {
			t.Fatalf("reader: %d bytes, %v; want the whole blob", len(r.got), r.err)
		}
	}
	if err := waitFill(f); err != nil {
		t.Fatal(err)
	}
	if got := src.opened(); !slices.Equal(got, []string{"0--1"}) {
		t.Errorf("the source was opened for %q, want once", got)
	}
}

// Bytes that do not hash to the digest are not kept, and no reader gets
// the last byte.
func TestFillWrongBytesNotKept(t *testing.T) {
	data := testreg.Bytes(1<<20, 43)
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0xff
	e := newEnv(t, envOpts{})
	f := e.runScriptedFill(t, data, &scriptedSource{name: "upstream", data: bad})
	got, rerr := e.readFill(f, 0)
	if err := waitFill(f); err == nil || rerr == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("fill err = %v, reader err = %v; want a digest mismatch for both", err, rerr)
	}
	if len(got) >= len(data) {
		t.Fatalf("a reader got all %d bytes of a blob that failed verification", len(got))
	}
	if e.stored(digestOf(data)) {
		t.Fatal("the corrupt blob was kept")
	}
}
