package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"sync/atomic"
	"testing"

	"berth/test/testreg"
)

// pxStart runs a forward proxy for plain http that counts the requests it
// forwards.
func pxStart(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	out := &http.Transport{}
	t.Cleanup(out.CloseIdleConnections)
	fwd := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL = r.In.URL }, Transport: out}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		n.Add(1)
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A rule's proxy carries its requests, whatever the environment says;
// noProxy sends the hosts it names direct.
func TestRuleProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1") // nothing listens there
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 1, 100, 200))
	proxy, forwarded := pxStart(t)
	ctx := context.Background()

	u := ctUpstream(t, reg.URL, func(r *Rule) { r.Proxy = proxy.URL })
	reg.Reset()
	if _, err := u.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest through the rule's proxy: %v", err)
	}
	if got, want := forwarded.Load(), int64(reg.Count("total")); got == 0 || got != want {
		t.Errorf("the proxy forwarded %d requests, the registry saw %d", got, want)
	}

	forwarded.Store(0)
	direct := ctUpstream(t, reg.URL, func(r *Rule) { r.Proxy, r.NoProxy = proxy.URL, []string{"127.0.0.0/8"} })
	if _, err := direct.HeadManifest(ctx, "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest direct: %v", err)
	}
	if n := forwarded.Load(); n != 0 {
		t.Errorf("the proxy forwarded %d requests for a noProxy host", n)
	}
}

// An operator's proxy may be on a private address, but never on a
// link-local or metadata one.
func TestRuleProxyFence(t *testing.T) {
	for proxy, blocked := range map[string]bool{
		"http://169.254.169.254:3128": true,
		"http://[fe80::1]:3128":       true,
		"http://10.0.0.1:3128":        false,
		"http://proxy.corp:3128":      false,
	} {
		_, err := DefaultTransport(Rule{Name: "t", URL: "https://r.example", Proxy: proxy})
		if got := errors.Is(err, ErrBlockedAddress); got != blocked {
			t.Errorf("proxy %s: err = %v, want blocked %v", proxy, err, blocked)
		}
	}
}

func TestNoProxy(t *testing.T) {
	n := noProxy{"internal.example", "*.corp.example", ".lan", "10.0.0.0/8", "192.0.2.7", "[::1]:5000"}
	for host, want := range map[string]bool{
		"internal.example":   true,
		"x.internal.example": false,
		"corp.example":       true,
		"a.b.corp.example":   true,
		"lan":                true,
		"nas.lan":            true,
		"10.1.2.3":           true,
		"11.1.2.3":           false,
		"192.0.2.7":          true,
		"::1":                true,
		"ghcr.io":            false,
	} {
		if got := n.matches(host); got != want {
			t.Errorf("matches(%s) = %v, want %v", host, got, want)
		}
	}
	if !(noProxy{"*"}).matches("anything.example") {
		t.Error(`"*" does not match every host`)
	}
}
