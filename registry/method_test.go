package registry

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A client's method never reaches the observer or the request log as
// sent: the methods the API serves keep their names, any other is OTHER,
// however long.
func TestRequestMethodIsNamedNotCopied(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		seen   []string
		logged []string
	)
	core, logs := observer.New(zap.InfoLevel)
	tr := newTestRegistry(t, WithLogger(zap.New(core)), WithObserver(func(ri RequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ri.Method)
	}))
	long := strings.Repeat("X", 64<<10)
	methods := map[string]string{
		http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPut: http.MethodPut,
		http.MethodPost: http.MethodPost, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
		http.MethodOptions: http.MethodOptions, "BREW": MethodOther, "get": MethodOther, long: MethodOther,
	}
	for sent, want := range methods {
		req, err := http.NewRequestWithContext(t.Context(), sent, tr.srv.URL+"/v2/library/ubuntu/manifests/latest", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.client.Do(req)
		if err != nil {
			t.Fatalf("%.8s: %v", sent, err)
		}
		resp.Body.Close()
		mu.Lock()
		got := seen[len(seen)-1]
		mu.Unlock()
		if got != want {
			t.Errorf("method %.8s… observed as %.8s…, want %s", sent, got, want)
		}
	}
	for _, e := range logs.FilterMessage("request").All() {
		logged = append(logged, e.ContextMap()["method"].(string))
	}
	for _, m := range logged {
		if len(m) > len(http.MethodOptions) {
			t.Errorf("request log names method %.16s… (%d bytes), want at most %q", m, len(m), http.MethodOptions)
		}
	}
	if len(logged) != len(methods) {
		t.Errorf("%d request lines, want %d", len(logged), len(methods))
	}
}
