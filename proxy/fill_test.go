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
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/store"
)

// slowBlobs makes the upstream send blobs in 1 MiB pieces with a pause
// after each. The returned function waits (bounded) for the first blob
// response to end and says when it did.
func (e *env) slowBlobs(delay time.Duration) func() time.Time {
	var once sync.Once
	done := make(chan struct{})
	var ended time.Time
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "blobs" {
			return false
		}
		e.up.Serve(&testreg.Throttle{ResponseWriter: w, Chunk: 1 << 20, Delay: delay}, r)
		once.Do(func() { ended = time.Now(); close(done) })
		return true
	})
	return func() time.Time {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		return ended
	}
}

func TestConcurrentColdPullsShareOneFill(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 100<<20, 1)
	e.pushImage(t, "big/app", "v1", img)
	fillEnded := e.slowBlobs(10 * time.Millisecond)
	e.up.Reset()

	const clients = 20
	type result struct {
		first time.Time
		sum   string
		n     int
		err   error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.berth.URL + "/v2/up/big/app/blobs/" + layer.String())
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				n, err := resp.Body.Read(buf)
				if n > 0 && results[i].first.IsZero() {
					results[i].first = time.Now()
				}
				h.Write(buf[:n])
				results[i].n += n
				if err == io.EOF {
					break
				}
				if err != nil {
					results[i].err = err
					return
				}
			}
			results[i].sum = "sha256:" + hex.EncodeToString(h.Sum(nil))
		}()
	}
	wg.Wait()
	ended := fillEnded()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("client %d: %v", i, r.err)
		}
		if r.sum != layer.String() || r.n != len(data) {
			t.Fatalf("client %d got %d bytes hashing to %s, want %d bytes of %s", i, r.n, r.sum, len(data), layer)
		}
		if !r.first.Before(ended) {
			t.Errorf("client %d got its first byte at %v, after the fill ended at %v", i, r.first, ended)
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
	img, data, layer := bigImage(t, 40<<20, 2)
	e.pushImage(t, "big/app", "v1", img)
	e.slowBlobs(20 * time.Millisecond)
	e.up.Reset()
	path := "/v2/up/big/app/blobs/" + layer.String()

	// One client starts the fill; a ranged request joins it part way.
	go func() {
		resp, err := http.Get(e.berth.URL + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	for e.proxy.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	tests := []struct {
		name       string
		rng        string
		start, end int
	}{
		{name: "open-ended", rng: "bytes=30000000-", start: 30000000, end: len(data) - 1},
		{name: "bounded", rng: "bytes=1000-2999", start: 1000, end: 2999},
		{name: "last byte", rng: fmt.Sprintf("bytes=%d-", len(data)-1), start: len(data) - 1, end: len(data) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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

func TestClientLeavingDoesNotStopFill(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, _, layer := bigImage(t, 20<<20, 3)
	e.pushImage(t, "big/app", "v1", img)
	e.slowBlobs(10 * time.Millisecond)
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
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := e.store.StatBlob(context.Background(), layer.String()); err == nil {
			break
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the fill did not finish after its client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.up.Count("GET blobs"); n != 1 {
		t.Fatalf("upstream saw %d blob GETs, want 1", n)
	}
}

func TestWrongBytesFromUpstreamAreNotKept(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 4<<20, 4)
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
	img, data, layer := bigImage(t, 8<<20, 5)
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
		w.Write(data[:3<<20])
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
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-%d", 3<<20, len(data)-1) {
		t.Fatalf("upstream saw ranges %q, want a full GET then a resume at %d", ranges, 3<<20)
	}
}
