package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// blobsBackend serves the blobs it holds by digest.
type blobsBackend map[string]Blob

func (blobsBackend) GetManifest(_ context.Context, req ManifestRequest) (*Manifest, error) {
	return nil, ErrManifestUnknown(req.Reference)
}

func (b blobsBackend) GetBlob(_ context.Context, req BlobRequest) (Blob, error) {
	if bl, ok := b[req.Digest.String()]; ok {
		return bl, nil
	}
	return nil, ErrBlobUnknown(req.Digest.String())
}

// fileBlob is a blob in a file, opened as *os.File (sent by sendfile).
type fileBlob struct {
	path string
	size int64
}

func (b fileBlob) Size() int64    { return b.size }
func (b fileBlob) Source() Source { return SourceStore }
func (b fileBlob) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// multiRangeServer serves data as a file blob and as a streamed (memory)
// blob, and returns the server and both paths.
func multiRangeServer(t *testing.T, data []byte) (srv *httptest.Server, filePath, streamPath string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fileDigest := FromBytes(data)
	streamData := append([]byte("s"), data[1:]...)
	streamDigest := FromBytes(streamData)
	be := blobsBackend{
		fileDigest.String():   fileBlob{path: path, size: int64(len(data))},
		streamDigest.String(): newMemBlob(streamData),
	}
	srv = httptest.NewServer(New(be))
	t.Cleanup(srv.Close)
	return srv, "/v2/team/app/blobs/" + fileDigest.String(), "/v2/team/app/blobs/" + streamDigest.String()
}

func rangeGet(t *testing.T, srv *httptest.Server, method, path, rng string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", rng)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s (Range %s): reading the body: %v", method, path, rng, err)
	}
	return resp, body
}

// readParts parses a multipart/byteranges answer into its parts' ranges
// and bytes.
func readParts(t *testing.T, resp *http.Response, body []byte) (ranges []string, parts [][]byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q (%v), want multipart/byteranges", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return ranges, parts
		}
		if err != nil {
			t.Fatal(err)
		}
		if ct := p.Header.Get("Content-Type"); ct != blobContentType {
			t.Errorf("part Content-Type %q, want %q", ct, blobContentType)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		ranges = append(ranges, p.Header.Get("Content-Range"))
		parts = append(parts, b)
	}
}

// TestMultiRange: several ranges are answered with 206 multipart/byteranges,
// byte for byte, from a file and from a stream; the announced length is
// the body's; HEAD announces the same length with no body.
func TestMultiRange(t *testing.T) {
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i*31 + i/256)
	}
	srv, filePath, streamPath := multiRangeServer(t, data)
	const rng = "bytes=0-9, 50000-50099,99990-,-5,70000-70000"
	want := []ByteRange{{0, 9}, {50000, 50099}, {99990, 99999}, {99995, 99999}, {70000, 70000}}
	for name, path := range map[string]string{"file": filePath, "stream": streamPath} {
		t.Run(name, func(t *testing.T) {
			blob := data
			if name == "stream" {
				blob = append([]byte("s"), data[1:]...)
			}
			resp, body := rangeGet(t, srv, http.MethodGet, path, rng)
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("status %d, want 206: %s", resp.StatusCode, body)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			crs, parts := readParts(t, resp, body)
			if len(parts) != len(want) {
				t.Fatalf("%d parts, want %d", len(parts), len(want))
			}
			for i, w := range want {
				if crs[i] != w.ContentRange(int64(len(blob))) {
					t.Errorf("part %d: Content-Range %q, want %q", i, crs[i], w.ContentRange(int64(len(blob))))
				}
				if !bytes.Equal(parts[i], blob[w.Start:w.End+1]) {
					t.Errorf("part %d: %d bytes differ from bytes %d-%d", i, len(parts[i]), w.Start, w.End)
				}
			}
			head, hb := rangeGet(t, srv, http.MethodHead, path, rng)
			if head.StatusCode != http.StatusPartialContent || head.ContentLength != resp.ContentLength || len(hb) != 0 {
				t.Errorf("HEAD: %d, Content-Length %d, %d body bytes; want 206, %d, none",
					head.StatusCode, head.ContentLength, len(hb), resp.ContentLength)
			}
		})
	}

	// Ranges beyond the blob are left out of a set; one left is a plain 206.
	resp, body := rangeGet(t, srv, http.MethodGet, filePath, "bytes=200000-,10-19")
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 10-19/100000" ||
		!bytes.Equal(body, data[10:20]) {
		t.Errorf("one satisfiable range of two: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}
}

// TestMultiRangeRefused: no satisfiable range, too many ranges or ranges
// adding up to more than the blob are 416 with the blob's size.
func TestMultiRangeRefused(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	srv, filePath, _ := multiRangeServer(t, data)
	many := make([]string, MaxRanges+1)
	for i := range many {
		many[i] = fmt.Sprintf("%d-%d", i, i)
	}
	for name, rng := range map[string]string{
		"none satisfiable": "bytes=1000-,2000-2100",
		"too many":         "bytes=" + strings.Join(many, ","),
		"overlapping":      "bytes=0-,0-",
		"more than blob":   "bytes=0-599,500-999",
		"one bad":          "bytes=0-9,x-y",
	} {
		resp, body := rangeGet(t, srv, http.MethodGet, filePath, rng)
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || !strings.Contains(string(body), CodeRangeInvalid) ||
			resp.Header.Get("Content-Range") != "bytes */"+strconv.Itoa(len(data)) {
			t.Errorf("%s: %d %q %s, want 416 RANGE_INVALID with bytes */%d", name, resp.StatusCode,
				resp.Header.Get("Content-Range"), body, len(data))
		}
	}
	resp, _ := rangeGet(t, srv, http.MethodGet, filePath, "bytes="+strings.Join(many[:MaxRanges], ","))
	if resp.StatusCode != http.StatusPartialContent {
		t.Errorf("%d ranges: status %d, want 206", MaxRanges, resp.StatusCode)
	}
}

// TestMultiRangeBrokenStream: a part whose reader fails cuts the answer;
// it never ends cleanly short.
func TestMultiRangeBrokenStream(t *testing.T) {
	data := bytes.Repeat([]byte("broken "), 20000)
	b := &memBlob{data: data, failAt: 70000}
	d := FromBytes(data)
	srv := httptest.NewServer(New(blobsBackend{d.String(): b}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/team/app/blobs/"+d.String(), nil)
	req.Header.Set("Range", "bytes=0-99,60000-80000")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if body, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("a failed part ended cleanly after %d of %d bytes", len(body), resp.ContentLength)
	}
}

// FuzzParseRanges: whatever the header, ParseRanges answers with at most
// MaxRanges ranges inside the blob that add up to no more than the blob,
// or a 416 RANGE_INVALID naming the blob's size.
func FuzzParseRanges(f *testing.F) {
	for _, h := range []string{"bytes=0-1,5-6", "bytes=-5", "bytes=0-,0-", "bytes=1000-,1-2", "bytes= 1-2 , 3-4", "bytes=,", "x"} {
		f.Add(h, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		rs, err := ParseRanges(h, size)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || re.Status != http.StatusRequestedRangeNotSatisfiable || re.Code != CodeRangeInvalid {
				t.Fatalf("ParseRanges(%q, %d): error %v, want 416 %s", h, size, err, CodeRangeInvalid)
			}
			return
		}
		if h != "" && len(rs) == 0 || len(rs) > MaxRanges {
			t.Fatalf("ParseRanges(%q, %d): %d ranges", h, size, len(rs))
		}
		var sum int64
		for _, r := range rs {
			if r.Start < 0 || r.End < r.Start || r.End >= size {
				t.Fatalf("ParseRanges(%q, %d): range %d-%d outside the blob", h, size, r.Start, r.End)
			}
			sum += r.Len()
		}
		if sum > size {
			t.Fatalf("ParseRanges(%q, %d): ranges add up to %d bytes", h, size, sum)
		}
	})
}
