package proxy

import (
	"berth/test/testreg"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth/store"
	"berth/upstream"
)

// holdBlobs makes the upstream send the first part bytes of every blob GET
// and hold the rest until the returned release is called; started is
// closed when the first blob GET arrives.
func (e *env) holdBlobs(t *testing.T, part int) (started <-chan struct{}, release func()) {
	arrived, held := make(chan struct{}), make(chan struct{})
	var arrivedOnce, releaseOnce sync.Once
	release = func() { releaseOnce.Do(func() { close(held) }) }
	t.Cleanup(release)
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
			return false
		}
		arrivedOnce.Do(func() { close(arrived) })
		e.up.Serve(&heldWriter{ResponseWriter: w, part: part, held: held, ctx: r.Context()}, r)
		return true
	})
	return arrived, release
}

// heldWriter writes part bytes, then waits for held before the rest.
type heldWriter struct {
	http.ResponseWriter
	part    int
	written int
	held    <-chan struct{}
	ctx     context.Context
}

func (w *heldWriter) Write(p []byte) (int, error) {
	n := 0
	if w.written < w.part {
		k := min(len(p), w.part-w.written)
		m, err := w.ResponseWriter.Write(p[:k])
		n, w.written = m, w.written+m
		if err != nil || k == len(p) {
			return n, err
		}
		p = p[k:]
		w.ResponseWriter.(http.Flusher).Flush()
	}
	select {
	case <-w.held:
	case <-w.ctx.Done():
		return n, w.ctx.Err()
	}
	m, err := w.ResponseWriter.Write(p)
	w.written += m
	return n + m, err
}

// Concurrent cold pulls of a blob share one fill: every client reads the
// first part while the upstream still holds the rest, and the upstream
// sees one GET.
func TestConcurrentColdPullsShareOneFill(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 1<<20, 1)
	e.pushImage(t, "big/app", "v1", img)
	_, release := e.holdBlobs(t, 512<<10)
	e.up.Reset()

	const clients = 8
	type result struct {
		sum string
		n   int
		err error
	}
	results := make(chan result, clients)
	firstByte := make(chan struct{}, clients)
	for range clients {
		go func() {
			r := result{}
			defer func() { results <- r }()
			resp, err := http.Get(e.berth.URL + "/v2/up/big/app/blobs/" + layer.String())
			if err != nil {
				r.err = err
				firstByte <- struct{}{}
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				n, err := resp.Body.Read(buf)
				if n > 0 && r.n == 0 {
					firstByte <- struct{}{}
				}
				h.Write(buf[:n])
				r.n += n
				if err == io.EOF {
					break
				}
				if err != nil {
					r.err = err
					if r.n == 0 {
						firstByte <- struct{}{}
					}
					return
				}
			}
			r.sum = "sha256:" + hex.EncodeToString(h.Sum(nil))
		}()
	}
	for range clients {
		<-firstByte // the upstream still holds the rest of the blob
	}
	release()
	for range clients {
		r := <-results
		if r.err != nil {
			t.Fatalf("client: %v", r.err)
		}
		if r.sum != layer.String() || r.n != len(data) {
			t.Fatalf("a client got %d bytes hashing to %s, want %d bytes of %s", r.n, r.sum, len(data), layer)
		}
	}
	if n := e.up.Count("GET blobs"); n != 1 {
		t.Fatalf("upstream saw %d blob GETs, want 1", n)
	}
	// Served from the store afterwards, with no upstream request.
	e.up.Reset()
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/big/app/blobs/"+layer.String(), nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("warm read: %v %v", err, resp)
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("warm read made %d upstream requests", n)
	}
}

func TestRangeOnBlobBeingFilled(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 1<<20, 2)
	e.pushImage(t, "big/app", "v1", img)
	started, release := e.holdBlobs(t, 512<<10)
	e.up.Reset()
	path := "/v2/up/big/app/blobs/" + layer.String()

	// One client starts the fill; ranged requests join it, the first while
	// the upstream holds the second half back.
	go func() {
		resp, err := http.Get(e.berth.URL + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-started
	tests := []struct {
		name       string
		rng        string
		start, end int
		release    bool // release the held half first
	}{
		{name: "bounded, in the part sent", rng: "bytes=1000-2999", start: 1000, end: 2999},
		{name: "open-ended", rng: "bytes=700000-", start: 700000, end: len(data) - 1, release: true},
		{name: "last byte", rng: fmt.Sprintf("bytes=%d-", len(data)-1), start: len(data) - 1, end: len(data) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.release {
				release()
			}
			resp, body, err := e.do(t, http.MethodGet, path, http.Header{"Range": {tt.rng}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("status %d", resp.StatusCode)
			}
			want := fmt.Sprintf("bytes %d-%d/%d", tt.start, tt.end, len(data))
			if got := resp.Header.Get("Content-Range"); got != want {
				t.Fatalf("Content-Range %q, want %q", got, want)
			}
			if !bytes.Equal(body, data[tt.start:tt.end+1]) {
				t.Fatalf("wrong bytes for %s", tt.rng)
			}
		})
	}
	if n := e.up.Count("GET blobs"); n != 1 {
		t.Fatalf("upstream saw %d blob GETs, want 1", n)
	}
	resp, body, _ := e.do(t, http.MethodGet, path, http.Header{"Range": {fmt.Sprintf("bytes=%d-", len(data))}})
	wantError(t, resp, body, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
}

// A client that leaves while the upstream still holds most of the blob
// does not stop the fill: the blob is stored once the upstream sends it.
func TestClientLeavingDoesNotStopFill(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, _, layer := bigImage(t, 1<<20, 3)
	e.pushImage(t, "big/app", "v1", img)
	_, release := e.holdBlobs(t, 64<<10)
	e.up.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.berth.URL+"/v2/up/big/app/blobs/"+layer.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	f := e.proxy.fills.inFlight(fillKey(upstream.Target{Upstream: e.proxy.Router().Upstream("up"), Repo: "big/app"}, layer.String()))
	if f == nil {
		t.Fatal("no fill in flight while the upstream holds the blob")
	}
	cancel()
	resp.Body.Close()
	release()
	if err := waitFill(f); err != nil {
		t.Fatalf("the fill failed after its client left: %v", err)
	}
	if !e.stored(layer.String()) {
		t.Fatal("the fill ended but the blob is not stored")
	}
	if n := e.up.Count("GET blobs"); n != 1 {
		t.Fatalf("upstream saw %d blob GETs, want 1", n)
	}
}

func TestWrongBytesFromUpstreamAreNotKept(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 512<<10, 4)
	e.pushImage(t, "big/app", "v1", img)
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, layer.String()) {
			return false
		}
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 0xff
		w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
		w.Write(bad)
		return true
	})
	path := "/v2/up/big/app/blobs/" + layer.String()
	resp, body, err := e.do(t, http.MethodGet, path, nil)
	if err == nil {
		t.Fatalf("client read a corrupt blob without error: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if len(body) >= len(data) {
		t.Fatalf("client received all %d bytes of a blob that failed verification", len(body))
	}
	if _, err := e.store.StatBlob(context.Background(), layer.String()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("corrupt blob was kept: %v", err)
	}
	// A healthy upstream: the next pull succeeds.
	e.up.Mutate(nil)
	resp, body, err = e.do(t, http.MethodGet, path, nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("healthy pull failed: %v %v", err, resp)
	}
}

// TestBrokenUpstreamStreamIsResumed cuts the upstream's blob stream half
// way once: the fill resumes with a Range request at the byte it reached
// and the client receives the whole blob.
func TestBrokenUpstreamStreamIsResumed(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 1<<20, 5)
	e.pushImage(t, "big/app", "v1", img)
	var once sync.Once
	var ranges []string
	var mu sync.Mutex
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, layer.String()) {
			return false
		}
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		cut := false
		once.Do(func() { cut = true })
		if !cut {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:300<<10])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/big/app/blobs/"+layer.String(), nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("resumed pull: err %v, %d bytes", err, len(body))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-%d", 300<<10, len(data)-1) {
		t.Fatalf("upstream saw ranges %q, want a full GET then a resume at %d", ranges, 300<<10)
	}
}

// A fill opens its blob's file while the upstream's headers are on their
// way; when the upstream has no such blob, the client gets BLOB_UNKNOWN
// and no file is left behind.
func TestFillOfUnknownBlobLeavesNoFile(t *testing.T) {
	e := newEnv(t, envOpts{})
	missing := "sha256:" + strings.Repeat("cd", 32)
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/lib/app/blobs/"+missing, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, body, http.StatusNotFound, "BLOB_UNKNOWN")
	if err := e.proxy.WaitFills(context.Background()); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.ReadDir(filepath.Join(e.dataDir, "tmp"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Errorf("a fill of a blob the upstream does not have left %d file(s) in tmp/, e.g. %s", len(tmp), tmp[0].Name())
	}
}
