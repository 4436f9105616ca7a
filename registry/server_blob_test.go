package registry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

func TestServerBlob(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)
	size := int64(len(tr.blobData))
	blobPath := "/v2/library/ubuntu/blobs/" + tr.blobDigest.String()

	tests := []struct {
		name         string
		method       string
		path         string
		rangeHdr     string
		status       int
		code         string
		start, end   int64 // expected bytes, inclusive
		contentRange string
		empty        bool
	}{
		{name: "GET full", method: http.MethodGet, path: blobPath, status: 200, start: 0, end: size - 1},
		{name: "HEAD full", method: http.MethodHead, path: blobPath, status: 200, start: 0, end: size - 1},
		{name: "GET open range", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=100-",
			status: 206, start: 100, end: size - 1, contentRange: "bytes 100-999/1000"},
		{name: "GET closed range", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=100-199",
			status: 206, start: 100, end: 199, contentRange: "bytes 100-199/1000"},
		{name: "GET range clamped", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=990-5000",
			status: 206, start: 990, end: 999, contentRange: "bytes 990-999/1000"},
		{name: "GET suffix range", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=-10",
			status: 206, start: 990, end: 999, contentRange: "bytes 990-999/1000"},
		{name: "GET last byte", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=999-",
			status: 206, start: 999, end: 999, contentRange: "bytes 999-999/1000"},
		{name: "HEAD range", method: http.MethodHead, path: blobPath, rangeHdr: "bytes=100-199",
			status: 206, start: 100, end: 199, contentRange: "bytes 100-199/1000"},
		{name: "GET with ns", method: http.MethodGet, path: blobPath + "?ns=docker.io", status: 200, start: 0, end: size - 1},
		{name: "GET empty blob", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + tr.emptyDigest.String(), status: 200, empty: true},
		{name: "range beyond size", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=1000-", status: 416, code: CodeRangeInvalid},
		{name: "range beyond size HEAD", method: http.MethodHead, path: blobPath, rangeHdr: "bytes=5000-6000", status: 416, code: CodeRangeInvalid},
		{name: "range reversed", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=200-100", status: 416, code: CodeRangeInvalid},
		{name: "range multiple overlapping", method: http.MethodGet, path: blobPath, rangeHdr: "bytes=0-999,3-4", status: 416, code: CodeRangeInvalid},
		{name: "range garbage", method: http.MethodGet, path: blobPath, rangeHdr: "pages=1", status: 416, code: CodeRangeInvalid},
		{name: "range on empty blob", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + tr.emptyDigest.String(), rangeHdr: "bytes=0-", status: 416, code: CodeRangeInvalid},
		{name: "unknown blob", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + testSHA512, status: 404, code: CodeBlobUnknown},
		{name: "unknown blob HEAD", method: http.MethodHead, path: "/v2/library/ubuntu/blobs/" + testSHA512, status: 404, code: CodeBlobUnknown},
		{name: "blob of another repository", method: http.MethodGet, path: "/v2/library/debian/blobs/" + tr.blobDigest.String(), status: 404, code: CodeBlobUnknown},
		{name: "bad digest", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/sha256:1234", status: 400, code: CodeDigestInvalid},
		{name: "unknown algorithm", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: CodeDigestInvalid},
		{name: "invalid name", method: http.MethodGet, path: "/v2/library/UBUNTU/blobs/" + tr.blobDigest.String(), status: 400, code: CodeNameInvalid},
		{name: "open fails", method: http.MethodGet, path: "/v2/library/ubuntu/blobs/" + tr.openErrDigest.String(), status: 500, code: CodeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var h http.Header
			if tt.rangeHdr != "" {
				h = http.Header{"Range": {tt.rangeHdr}}
			}
			resp, body := tr.do(t, tt.method, tt.path, h)
			if tt.code != "" {
				checkErrorBody(t, tt.method, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			var want []byte
			if !tt.empty {
				want = tr.blobData[tt.start : tt.end+1]
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length = %q, want %d", cl, len(want))
			}
			if cr := resp.Header.Get("Content-Range"); cr != tt.contentRange {
				t.Errorf("Content-Range = %q, want %q", cr, tt.contentRange)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type = %q, want application/octet-stream", ct)
			}
			if ar := resp.Header.Get("Accept-Ranges"); ar != "bytes" {
				t.Errorf("Accept-Ranges = %q, want bytes", ar)
			}
			wantDigest := tr.blobDigest
			if tt.empty {
				wantDigest = tr.emptyDigest
			}
			if d := resp.Header.Get("Docker-Content-Digest"); d != wantDigest.String() {
				t.Errorf("Docker-Content-Digest = %q, want %q", d, wantDigest)
			}
			if tt.method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD response has a body of %d bytes", len(body))
				}
				return
			}
			if !bytes.Equal(body, want) {
				t.Errorf("body is %d bytes, want bytes %d-%d (%d bytes)", len(body), tt.start, tt.end, len(want))
			}
			if tt.status == http.StatusOK && !wantDigest.Verify(body) {
				t.Errorf("body does not verify against %s", wantDigest)
			}
		})
	}
}

func TestServerBlobBrokenStream(t *testing.T) {
	t.Parallel()

	var (
		mu    sync.Mutex
		infos []RequestInfo
	)
	tr := newTestRegistry(t, WithObserver(func(ri RequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, ri)
	}))
	size := len(tr.brokenData)
	failAt := size / 2

	tests := []struct {
		name     string
		rangeHdr string
		status   int
		want     int // bytes the response announces
	}{
		{name: "full", status: http.StatusOK, want: size},
		{name: "range before failure", rangeHdr: "bytes=10-", status: http.StatusPartialContent, want: size - 10},
		{name: "range after failure", rangeHdr: "bytes=" + strconv.Itoa(failAt+10) + "-", status: http.StatusPartialContent, want: size - failAt - 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
				tr.srv.URL+"/v2/library/ubuntu/blobs/"+tr.brokenDigest.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rangeHdr != "" {
				req.Header.Set("Range", tt.rangeHdr)
			}
			resp, err := tr.client.Do(req)
			if err != nil {
				// The connection was cut before the headers: also broken.
				t.Logf("request failed before the headers: %v", err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if resp.ContentLength != int64(tt.want) {
				t.Fatalf("Content-Length = %d, want %d", resp.ContentLength, tt.want)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil && len(body) == tt.want {
				t.Fatalf("read %d bytes and a clean EOF from a blob whose reader failed", len(body))
			}
			if err == nil {
				t.Fatalf("short body (%d of %d bytes) ended with a clean EOF", len(body), tt.want)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("body read failed with %v", err)
			}
			if len(body) >= tt.want {
				t.Errorf("read %d bytes, want fewer than %d", len(body), tt.want)
			}
		})
	}

	mu.Lock()
	defer mu.Unlock()
	for _, ri := range infos {
		if ri.Kind != KindBlob {
			t.Errorf("observed request of kind %v, want blob", ri.Kind)
		}
	}
}
