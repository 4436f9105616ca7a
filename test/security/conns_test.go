package security

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// One client cannot hold the node's connections (docs/security.md,
// "Parsers take any input; the whole node holds under load"): idle
// connections cost the node memory, and opening them costs the client
// nothing. Past maxConnectionsPerAddress, a connection is answered 429
// TOOMANYREQUESTS saying which key caps it, and closed; the refusals are
// counted in /metrics; once the client closes its connections it is
// served again.
func TestOneAddressCannotHoldTheConnections(t *testing.T) {
	const perAddress = 20
	n := startBerth(t, "maxConnectionsPerAddress: 20\n")
	addr := strings.TrimPrefix(n.URL, "http://")
	// Start from none: the start's readiness checks keep one alive.
	http.DefaultClient.CloseIdleConnections()
	eventually(t, 10*time.Second, "the node holds no connection", func() bool {
		return strings.Contains(scrape(t, n), `berth_connections_open{listener="registry"} 0`+"\n")
	})
	var held []net.Conn
	for range perAddress {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The node has taken every held connection once a request on the
	// last one is answered.
	if _, err := held[perAddress-1].Write([]byte("GET /v2/ HTTP/1.1\r\nHost: berth\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(held[perAddress-1]), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a request within the limit: %v %v", resp, err)
	}
	resp.Body.Close()

	// A client past the limit gets the refusal as its answer.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err = c.Get(n.URL + "/v2/")
	if err != nil {
		t.Fatalf("a request past the limit got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var oe struct {
		Errors []struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal(body, &oe) != nil || len(oe.Errors) != 1 ||
		oe.Errors[0].Code != "TOOMANYREQUESTS" || !strings.Contains(oe.Errors[0].Message, "maxConnectionsPerAddress") {
		t.Fatalf("past the limit: %d %s, want 429 TOOMANYREQUESTS naming maxConnectionsPerAddress", resp.StatusCode, body)
	}
	metrics := scrape(t, n)
	if !strings.Contains(metrics, `berth_connections_refused_total{listener="registry",reason="per-address"} 1`+"\n") {
		t.Errorf("/metrics does not count the refusal:\n%s", grepLines(metrics, "berth_connections"))
	}
	if !strings.Contains(metrics, `berth_connections_open{listener="registry"} 20`+"\n") {
		t.Errorf("/metrics does not show the 20 held connections:\n%s", grepLines(metrics, "berth_connections"))
	}

	for _, h := range held {
		h.Close()
	}
	eventually(t, 10*time.Second, "the address is served again once it closed its connections", func() bool {
		st, _ := n.do(t, http.MethodGet, "/v2/", "", nil)
		return st == http.StatusOK
	})
}

func scrape(t *testing.T, n *node) string {
	t.Helper()
	resp, err := http.Get(n.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
