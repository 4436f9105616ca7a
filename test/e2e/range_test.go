package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sync"
	"testing"
	"time"

	"berth/test/testreg"
)

// TestMultiRangeThroughBerth asks for several ranges of a layer as
// zstd:chunked readers do (head, middle and the footer): cold, so the
// range request starts the fill and is answered as the fill reaches each
// range, by two clients at once (the second joins the fill in progress),
// then warm from the store. Every answer is a 206 multipart/byteranges
// checked byte for byte, and the upstream sees one GET of the blob.
func TestMultiRangeThroughBerth(t *testing.T) {
	t.Parallel()
	up := testreg.Start(t)
	d, blob := pushOneLayer(t, up, 17, 6<<20)
	up.Reset()
	up.SlowBlobs(20 * time.Millisecond) // a fill of 6 pieces: the ranges arrive as it goes

	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, false, ""))
	url := b.URL + "/v2/hub/team/app/blobs/" + d
	size := int64(len(blob))
	ranges := [][2]int64{{0, 99}, {3 << 20, 3<<20 + 999}, {size - 100, size - 1}}
	hdr := fmt.Sprintf("bytes=0-99,%d-%d,-100", 3<<20, 3<<20+999)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = checkMultiRange(ctx, url, hdr, blob, ranges)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("cold multi-range GET %d: %v", i+1, err)
		}
	}
	if err := checkMultiRange(ctx, url, hdr, blob, ranges); err != nil {
		t.Errorf("warm multi-range GET: %v", err)
	}
	assertOneGETPerBlob(t, "multi-range", up, "team/app", []string{d})
}

// pushOneLayer pushes team/app:v1, an image of one layer of size bytes,
// to up and returns the layer's digest and bytes.
func pushOneLayer(t *testing.T, up *testreg.Registry, seed uint64, size int) (string, []byte) {
	t.Helper()
	img := testreg.Image(t, seed, size)
	up.Push(t, "team/app", "v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	dg, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return dg.String(), blob
}

// checkMultiRange GETs url with the Range header hdr and checks the 206
// multipart/byteranges answer against the ranges of blob.
func checkMultiRange(ctx context.Context, url, hdr string, blob []byte, ranges [][2]int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", hdr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		return fmt.Errorf("Content-Type %q (%v)", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if i != len(ranges) {
				return fmt.Errorf("%d parts, want %d", i, len(ranges))
			}
			return nil
		}
		if err != nil {
			return err
		}
		if i >= len(ranges) {
			return fmt.Errorf("more than %d parts", len(ranges))
		}
		rg := ranges[i]
		want := fmt.Sprintf("bytes %d-%d/%d", rg[0], rg[1], len(blob))
		if cr := p.Header.Get("Content-Range"); cr != want {
			return fmt.Errorf("part %d: Content-Range %q, want %q", i, cr, want)
		}
		got, err := io.ReadAll(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, blob[rg[0]:rg[1]+1]) {
			return fmt.Errorf("part %d: %d bytes differ from the blob's bytes %s", i, len(got), want)
		}
	}
}

// TestColdRangeDoesNotWaitForTheBlob: a multi-range GET of a blob not yet
// stored is answered as soon as the fill has the ranges' bytes, while the
// upstream still holds back the rest of the blob.
func TestColdRangeDoesNotWaitForTheBlob(t *testing.T) {
	t.Parallel()
	up := testreg.Start(t)
	d, blob := pushOneLayer(t, up, 19, 4<<20)
	release := make(chan struct{})
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	up.Mutate(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodGet || testreg.Kind(req.URL.Path) != "blobs" {
			return false
		}
		up.Serve(&gateWriter{ResponseWriter: w, open: 1 << 20, release: release}, req)
		return true
	})
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, false, ""))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := b.URL + "/v2/hub/team/app/blobs/" + d
	if err := checkMultiRange(ctx, url, "bytes=0-99,4096-8191,100000-100099", blob,
		[][2]int64{{0, 99}, {4096, 8191}, {100000, 100099}}); err != nil {
		t.Fatalf("multi-range GET while the upstream holds back all but the first MiB: %v", err)
	}
	released()
	if err := checkMultiRange(ctx, url, "bytes=-10,0-9", blob,
		[][2]int64{{int64(len(blob)) - 10, int64(len(blob)) - 1}, {0, 9}}); err != nil {
		t.Fatalf("multi-range GET once the fill could finish: %v", err)
	}
	assertOneGETPerBlob(t, "cold range", up, "team/app", []string{d})
}

// gateWriter passes the first open bytes of a response, then waits for
// release before passing the rest.
type gateWriter struct {
	http.ResponseWriter
	open    int
	release <-chan struct{}
	sent    int
}

func (w *gateWriter) Write(p []byte) (int, error) {
	if w.sent < w.open {
		k, err := w.ResponseWriter.Write(p[:min(len(p), w.open-w.sent)])
		w.sent += k
		if err != nil || k == len(p) {
			return k, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		m, err := w.Write(p[k:])
		return k + m, err
	}
	<-w.release
	n, err := w.ResponseWriter.Write(p)
	w.sent += n
	return n, err
}
