package registry

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client that stops sending an upload body does not hold the connection
// (or its session) past the idle limit: it gets 400 BLOB_UPLOAD_INVALID.
func TestStalledUploadBodyIsCut(t *testing.T) {
	st := newMemStore()
	srv := httptest.NewServer(New(st, WithBodyPace(200*time.Millisecond, 1)))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL+"/v2/a/b/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload: %d %q", resp.StatusCode, loc)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 10 of the 100000 bytes announced, then silence.
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n0123456789", loc)
	// The bound is the test's own safety net, far above the 200 ms limit.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer got.Body.Close()
	if got.StatusCode != http.StatusBadRequest {
		t.Fatalf("stalled body: status %d, want 400", got.StatusCode)
	}
	var body strings.Builder
	_, _ = bufio.NewReader(got.Body).WriteTo(&body)
	if !strings.Contains(body.String(), CodeBlobUploadInvalid) || !strings.Contains(body.String(), "stalled") {
		t.Fatalf("stalled body answer: %s", body.String())
	}
}
