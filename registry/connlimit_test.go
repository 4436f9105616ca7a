package registry

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// connTarget is a ConnListener on loopback whose accepted connections the
// test holds until it closes them.
type connTarget struct {
	cl       *ConnListener
	accepted chan net.Conn
	refused  chan string
}

func startConnTarget(t *testing.T, lim ConnLimits, cfg *tls.Config) *connTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ct := &connTarget{accepted: make(chan net.Conn, 16), refused: make(chan string, 16)}
	ct.cl = &ConnListener{Listener: ln, TLS: cfg, Limits: func() ConnLimits { return lim },
		OnRefuse: func(_, reason string) { ct.refused <- reason }}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ct.cl.Accept()
			if err != nil {
				return
			}
			ct.accepted <- c
		}
	}()
	return ct
}

// dial opens a connection and, once the listener took it or refused it,
// says which: the accepted server side, or the refusal reason.
func (ct *connTarget) dial(t *testing.T) (client, server net.Conn, reason string) {
	t.Helper()
	c, err := net.Dial("tcp", ct.cl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case s := <-ct.accepted:
		return c, s, ""
	case r := <-ct.refused:
		return c, nil, r
	}
}

// readRefusal reads the answer of a refused connection: its status and
// OCI error.
func readRefusal(t *testing.T, r *bufio.Reader) (int, string, string) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("refusal body: %v %+v", err, body)
	}
	if resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Errorf("refusal headers %v: want Retry-After and Connection: close", resp.Header)
	}
	return resp.StatusCode, body.Errors[0].Code, body.Errors[0].Message
}

// TestConnListenerCapsPerAddress: an address holding its limit gets 429
// TOOMANYREQUESTS naming the key to raise, then closed; once one of its
// connections closes, the next is taken.
func TestConnListenerCapsPerAddress(t *testing.T) {
	ct := startConnTarget(t, ConnLimits{PerAddress: 2}, nil)
	var held []net.Conn
	for range 2 {
		_, s, reason := ct.dial(t)
		if reason != "" {
			t.Fatalf("a connection within the limit was refused: %s", reason)
		}
		held = append(held, s)
	}
	c, _, reason := ct.dial(t)
	if reason != RefusedPerAddress {
		t.Fatalf("third connection: refused %q, want %q", reason, RefusedPerAddress)
	}
	// The client may send its request before reading the answer.
	if _, err := c.Write([]byte("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	st, code, msg := readRefusal(t, bufio.NewReader(c))
	if st != http.StatusTooManyRequests || code != CodeTooManyRequests || !strings.Contains(msg, "maxConnectionsPerAddress") {
		t.Errorf("refusal: %d %s %q", st, code, msg)
	}
	if n := ct.cl.Open(); n != 2 {
		t.Errorf("%d connections held, want 2", n)
	}
	held[0].Close()
	held[0].Close() // released once
	if _, _, reason := ct.dial(t); reason != "" {
		t.Fatalf("after a close: refused %q", reason)
	}
	if n := ct.cl.Open(); n != 2 {
		t.Errorf("%d connections held after one closed (twice) and one opened, want 2", n)
	}
}

// TestConnListenerCapsAll: a full listener answers 503 TOOMANYREQUESTS
// naming maxConnections, over TLS on a TLS listener.
func TestConnListenerCapsAll(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS() // for its certificate
	defer srv.Close()
	ct := startConnTarget(t, ConnLimits{Max: 1, PerAddress: 10}, srv.TLS)
	if _, _, reason := ct.dial(t); reason != "" {
		t.Fatalf("first connection refused: %s", reason)
	}
	c, _, reason := ct.dial(t)
	if reason != RefusedMax {
		t.Fatalf("second connection: refused %q, want %q", reason, RefusedMax)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate
	st, code, msg := readRefusal(t, bufio.NewReader(tc))
	if st != http.StatusServiceUnavailable || code != CodeTooManyRequests || !strings.Contains(msg, "maxConnections") {
		t.Errorf("refusal: %d %s %q", st, code, msg)
	}
}

// TestConnListenerKeepsSendfile: a file body goes out through the TCP
// connection's own ReadFrom (sendfile), and a response can still end with
// CloseWrite: net/http finds both by type assertion on the connection the
// listener returns.
func TestConnListenerKeepsSendfile(t *testing.T) {
	ct := startConnTarget(t, ConnLimits{PerAddress: 4}, nil)
	c, s, reason := ct.dial(t)
	if reason != "" {
		t.Fatal(reason)
	}
	if _, ok := s.(io.ReaderFrom); !ok {
		t.Fatal("the accepted connection is no io.ReaderFrom: net/http would copy file bodies through user space")
	}
	if _, ok := s.(interface{ CloseWrite() error }); !ok {
		t.Fatal("the accepted connection has no CloseWrite")
	}
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("berth ", 100_000)
	if _, err := f.WriteString(want); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.(io.ReaderFrom).ReadFrom(f)
		if err == nil {
			err = s.(interface{ CloseWrite() error }).CloseWrite()
		}
		done <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != want {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
