package registry

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"berth/errdefs"
)

// failingBackend answers every manifest request with err.
type failingBackend struct{ err error }

func (f failingBackend) GetManifest(context.Context, ManifestRequest) (*Manifest, error) {
	return nil, f.err
}

const upstreamDown = "upstream hub failed for tag v1 of team/app and it is not cached here: " +
	"dial tcp 127.0.0.1:1: connect: connection refused"

// rawRequest sends req on a new connection to addr and returns the status
// line, the headers and the body as the server sent them.
func rawRequest(t *testing.T, addr, req string) (status string, h http.Header, body string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, err = br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(status), br)), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.Close {
		resp.Header.Set("Connection", "close") // ReadResponse took it out
	}
	return strings.TrimRight(status, "\r\n"), resp.Header, string(b)
}

// TestUpstreamFailureInStatusLine: a 5xx answer on HTTP/1.1 names the
// failure in its status line (docker and skopeo print only that), keeps
// its JSON body and headers, closes the connection, and is observed with
// its status.
func TestUpstreamFailureInStatusLine(t *testing.T) {
	observed := make(chan RequestInfo, 5)
	s := New(failingBackend{errdefs.New(errdefs.ErrUpstreamUnavailable, upstreamDown)},
		WithObserver(func(ri RequestInfo) { observed <- ri }))
	srv := httptest.NewServer(s)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	status, h, getBody := rawRequest(t, addr, "GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
	if want := "HTTP/1.1 502 " + upstreamDown; status != want {
		t.Errorf("status line %q, want %q", status, want)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(getBody), &eb); err != nil || len(eb.Errors) != 1 ||
		eb.Errors[0].Code != CodeUpstreamUnavailable || eb.Errors[0].Message != upstreamDown {
		t.Errorf("body %q (%v), want the UPSTREAM_UNAVAILABLE error", getBody, err)
	}
	if h.Get("Connection") != "close" || h.Get("Content-Type") != "application/json" ||
		h.Get("Docker-Distribution-API-Version") != "registry/2.0" || h.Get("Date") == "" {
		t.Errorf("headers %v", h)
	}

	status, h, body := rawRequest(t, addr, "HEAD /v2/team/app/manifests/v1 HTTP/1.0\r\n\r\n")
	if want := "HTTP/1.0 502 " + upstreamDown; status != want || body != "" || h.Get("Content-Length") == "0" {
		t.Errorf("HEAD: status line %q, body %q, headers %v; want %q, no body and the body's length", status, body, h, want)
	}

	// A short request body is read to its end first.
	status, _, _ = rawRequest(t, addr, "GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	if want := "HTTP/1.1 502 " + upstreamDown; status != want {
		t.Errorf("with a short request body: status line %q, want %q", status, want)
	}

	// A long body the client is still sending, or one it sends only
	// after "100 Continue", is answered as net/http answers.
	long := strings.Repeat("x", maxDrain+10)
	for name, req := range map[string]string{
		"long body":    "GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(long)) + "\r\n\r\n" + long,
		"100-continue": "GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
	} {
		if status, _, _ := rawRequest(t, addr, req); status != "HTTP/1.1 502 Bad Gateway" {
			t.Errorf("%s: status line %q, want the plain one", name, status)
		}
	}

	for range 5 {
		ri := <-observed
		if ri.Status != http.StatusBadGateway || ri.Code != CodeUpstreamUnavailable {
			t.Errorf("observed %s with status %d code %q, want 502 %s", ri.Method, ri.Status, ri.Code, CodeUpstreamUnavailable)
		}
		want := int64(len(getBody))
		if ri.Method == http.MethodHead {
			want = 0
		}
		if ri.Bytes != want {
			t.Errorf("observed %d body bytes for %s, want %d", ri.Bytes, ri.Method, want)
		}
	}
}

// TestStatusLineReasonOverTLS: on HTTP/1.1 over TLS the hijacked
// connection is the TLS one, so the reason phrase arrives encrypted and
// whole.
func TestStatusLineReasonOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(New(failingBackend{errdefs.New(errdefs.ErrUpstreamUnavailable, upstreamDown)}))
	defer srv.Close()
	c, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.Status != "502 "+upstreamDown || !resp.Close || !strings.Contains(string(body), CodeUpstreamUnavailable) {
		t.Errorf("over TLS: %q, close %v, body %q (%v)", resp.Status, resp.Close, body, err)
	}
}

// TestStatusLineUntouchedBelow500AndOnHTTP2: client errors keep net/http's
// status line, and HTTP/2 (which has no reason phrase) is left alone.
func TestStatusLineUntouchedBelow500AndOnHTTP2(t *testing.T) {
	s := New(failingBackend{errdefs.New(errdefs.ErrManifestUnknown, "manifest unknown: v1")})
	srv := httptest.NewServer(s)
	defer srv.Close()
	status, _, _ := rawRequest(t, srv.Listener.Addr().String(), "GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
	if status != "HTTP/1.1 404 Not Found" {
		t.Errorf("404: status line %q", status)
	}

	h2 := httptest.NewUnstartedServer(New(failingBackend{errdefs.New(errdefs.ErrUpstreamUnavailable, upstreamDown)}))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	resp, err := h2.Client().Get(h2.URL + "/v2/team/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "connection refused") {
		t.Errorf("HTTP/2: %s %s %s", resp.Proto, resp.Status, b)
	}
}

func TestReason(t *testing.T) {
	cases := map[string]string{
		"upstream a: refused":                           "upstream a: refused",
		"line one\r\nHTTP/1.1 200 OK\r\n":               "line one HTTP/1.1 200 OK",
		"t\tab\x00nul \xe2\x9c\x93 utf8":                "t ab nul utf8",
		"get https://bob:s3cret@reg.example/v2/ failed": "get https://reg.example/v2/ failed",
		"proxy http://tok@10.0.0.1:3128 and ftp://a@b":  "proxy http://10.0.0.1:3128 and ftp://b",
		"no url: user@host":                             "no url: user@host",
	}
	for in, want := range cases {
		if got := Reason(in); got != want {
			t.Errorf("Reason(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("x", 5000)
	if got := Reason(long); len(got) != maxReason || !strings.HasSuffix(got, "...") {
		t.Errorf("Reason of 5000 bytes: %d bytes %q…", len(got), got[:10])
	}
	if got := Reason(strings.Repeat("y", maxReason)); got != strings.Repeat("y", maxReason) {
		t.Errorf("Reason of exactly maxReason bytes was cut")
	}
}
