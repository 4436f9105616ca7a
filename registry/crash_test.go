package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

type panickingBackend struct{}

func (panickingBackend) GetManifest(context.Context, ManifestRequest) (*Manifest, error) {
	panic("backend bug")
}

// A backend that panics costs its request a 500 with an OCI error, and the
// observer (audit) is told the request crashed; the connection and the
// server survive.
func TestCrashedRequestIsAnsweredAndObserved(t *testing.T) {
	var mu sync.Mutex
	var seen []RequestInfo
	srv := httptest.NewServer(New(panickingBackend{}, WithObserver(func(i RequestInfo) {
		mu.Lock()
		seen = append(seen, i)
		mu.Unlock()
	})))
	t.Cleanup(srv.Close)
	for i := 0; i < 2; i++ {
		resp, err := srv.Client().Get(srv.URL + "/v2/a/manifests/v1")
		if err != nil {
			t.Fatalf("request %d: %v (the connection dropped)", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkErrorBody(t, http.MethodGet, resp, body, http.StatusInternalServerError, CodeUnknown)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !seen[0].Crashed || seen[0].Status != http.StatusInternalServerError {
		t.Fatalf("observed %+v", seen)
	}
}
