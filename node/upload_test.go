package node

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Upload bytes count against the store's cap as they arrive, and one
// upload is held to local.maxUploadBytes; a refused chunk leaves the
// session as it was.
func TestUploadsAreChargedAndCapped(t *testing.T) {
	e := newReloadEnv(t, `local: {maxUploadBytes: 6291456}
cache: {maxBytes: 16777216}
`)
	start := func() string {
		req, _ := http.NewRequest(http.MethodPost, e.reg.URL+"/v2/private/app/blobs/uploads/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %d", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}
	patch := func(loc string, n int) (int, string) {
		req, _ := http.NewRequest(http.MethodPatch, e.reg.URL+loc, bytes.NewReader(make([]byte, n)))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Range") + " " + string(b)
	}
	loc := start()
	if st, body := patch(loc, 4<<20); st != http.StatusAccepted {
		t.Fatalf("4 MiB chunk: %d %s", st, body)
	}
	st, body := patch(loc, 4<<20)
	if st != http.StatusRequestEntityTooLarge || !strings.Contains(body, "SIZE_INVALID") || !strings.Contains(body, "maxUploadBytes") {
		t.Fatalf("chunk crossing maxUploadBytes: %d %s", st, body)
	}

	// The cap on the store: 16 MiB; with maxUploadBytes lifted, an upload
	// past it gets 507 as its bytes arrive.
	e.apply(`local: {maxUploadBytes: 0}
cache: {maxBytes: 16777216}
`)
	loc = start()
	st, body = patch(loc, 24<<20)
	if st != http.StatusInsufficientStorage {
		t.Fatalf("24 MiB upload into a 16 MiB store: %d %s", st, body)
	}
}
