package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
)

// selfWriter is a blob reader that writes itself (io.WriterTo), as an
// encrypted blob's stream does; extra is written after its bytes, in the
// same Write, and calls counts the WriteTo calls.
type selfWriter struct {
	io.Reader
	rest  []byte
	extra []byte
	calls *atomic.Int32
}

func (s selfWriter) Close() error { return nil }

func (s selfWriter) WriteTo(w io.Writer) (int64, error) {
	s.calls.Add(1)
	n, err := w.Write(append(bytes.Clone(s.rest), s.extra...))
	return int64(n), err
}

// A blob reader that writes itself is used for a body to the blob's end
// (whole, or an open range), never for a range that stops short of it,
// and a body longer than the blob is cut, never sent.
func TestServerBlobWriterTo(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)
	data := bytes.Repeat([]byte("writes itself "), 10000)
	var calls atomic.Int32
	var extra []byte
	d := tr.backend.addBlob("library/ubuntu", &memBlob{data: data, failAt: -1, open: func(off int64) io.ReadCloser {
		return selfWriter{Reader: bytes.NewReader(data[off:]), rest: data[off:], extra: extra, calls: &calls}
	}})
	path := "/v2/library/ubuntu/blobs/" + d.String()
	for _, tt := range []struct {
		name, rangeHdr string
		want           []byte
		writes         int32
	}{
		{"whole", "", data, 1},
		{"open range", "bytes=100-", data[100:], 1},
		{"closed range", "bytes=100-1999", data[100:2000], 0},
		{"range ending at the last byte", "bytes=5-" + strconv.Itoa(len(data)-1), data[5:], 1},
	} {
		calls.Store(0)
		var h http.Header
		if tt.rangeHdr != "" {
			h = http.Header{"Range": {tt.rangeHdr}}
		}
		_, body := tr.do(t, http.MethodGet, path, h)
		if !bytes.Equal(body, tt.want) {
			t.Errorf("%s: %d bytes, want %d", tt.name, len(body), len(tt.want))
		}
		if got := calls.Load(); got != tt.writes {
			t.Errorf("%s: WriteTo called %d times, want %d", tt.name, got, tt.writes)
		}
	}

	extra = []byte("one byte too many")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tr.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.client.Do(req)
	if err != nil {
		return // the connection was cut before the headers: broken too
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || len(body) >= len(data) {
		t.Fatalf("a body longer than the blob: read %d of %d bytes, %v; want a broken stream", len(body), len(data), err)
	}
}

// A body given as a file span (a fill in progress followed with sendfile)
// goes to the connection whole when the client is not paced, through the
// paced writes when it is, and never past the length announced.
func TestFlushingWriterReadFrom(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("file span "), 5000)
	file := filepath.Join(t.TempDir(), "span")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, paced := range []bool{false, true} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{ResponseWriter: httptest.NewRecorder()}
		var paid int
		if paced {
			rec.pace = func(n int) error { paid += n; return nil }
		}
		fw := &flushingWriter{ctx: context.Background(), w: rec, left: int64(len(data))}
		n, err := fw.ReadFrom(&io.LimitedReader{R: f, N: int64(len(data))})
		f.Close()
		body := rec.ResponseWriter.(*httptest.ResponseRecorder).Body.Bytes()
		if err != nil || n != int64(len(data)) || !bytes.Equal(body, data) || fw.left != 0 {
			t.Errorf("paced %v: sent %d of %d, %v, left %d", paced, n, len(data), err, fw.left)
		}
		if paced && paid != len(data) {
			t.Errorf("paced: %d of %d bytes paid to the client's cap", paid, len(data))
		}
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &recorder{ResponseWriter: httptest.NewRecorder()}
	fw := &flushingWriter{ctx: context.Background(), w: rec, left: 10}
	if n, err := fw.ReadFrom(&io.LimitedReader{R: f, N: 11}); !errors.Is(err, errTooLong) || n != 0 {
		t.Errorf("a span past the announced length: sent %d, %v; want errTooLong and nothing sent", n, err)
	}
}
