package security

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A client's methods cannot grow the node's metrics or log lines
// (docs/security.md, "Parsers take any input; the whole node holds under
// load"): any token is a valid HTTP method, up to the header limit, and
// each distinct one kept as a label would be a new series for as long as
// the process lives. A hundred long methods of the client's invention are
// refused, counted under OTHER, and appear nowhere in /metrics or the log.
func TestClientMethodsMakeNoSeries(t *testing.T) {
	n := startBerth(t, "")
	const sent = 100
	mark := strings.Repeat("Q", 8<<10)
	c := &http.Client{}
	for i := range sent {
		method := fmt.Sprintf("M%03d%s", i, mark)
		req, err := http.NewRequest(method, n.URL+"/v2/library/busybox/manifests/latest", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"code":"UNSUPPORTED"`) {
			t.Fatalf("method %d: %d %.200s, want 405 UNSUPPORTED", i, resp.StatusCode, body)
		}
	}
	metrics := scrape(t, n)
	if strings.Contains(metrics, "QQQQ") {
		t.Errorf("/metrics carries a client's method (%d bytes in all)", len(metrics))
	}
	want := fmt.Sprintf(`berth_http_requests_total{method="OTHER",route="manifest",status="405"} %d`, sent)
	if !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %q", want)
	}
	if strings.Contains(n.logText(), "QQQQ") {
		t.Errorf("the log carries a client's method")
	}
}
