package registry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// evictedBlob is a stored file that is unlinked right after it is first
// opened, as when eviction deletes a blob being served.
type evictedBlob struct{ fileBlob }

func (b evictedBlob) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	rc, err := b.fileBlob.Open(ctx, off)
	if err == nil {
		err = os.Remove(b.path)
	}
	return rc, err
}

// TestMultiRangeBlobEvictedMidAnswer: every part of a stored blob comes
// from the file opened first, so a blob deleted under the answer (its file
// unlinked, never truncated) is still sent whole.
func TestMultiRangeBlobEvictedMidAnswer(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d := FromBytes(data)
	srv := httptest.NewServer(New(blobsBackend{d.String(): evictedBlob{fileBlob{path: path, size: int64(len(data))}}}))
	t.Cleanup(srv.Close)
	resp, body := rangeGet(t, srv, http.MethodGet, "/v2/team/app/blobs/"+d.String(), "bytes=0-9,5000-5009,9990-9999")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, parts := readParts(t, resp, body)
	want := []ByteRange{{0, 9}, {5000, 5009}, {9990, 9999}}
	if len(parts) != len(want) {
		t.Fatalf("%d parts, want %d", len(parts), len(want))
	}
	for i, w := range want {
		if !bytes.Equal(parts[i], data[w.Start:w.End+1]) {
			t.Errorf("part %d: %q, want %q", i, parts[i], data[w.Start:w.End+1])
		}
	}
}
