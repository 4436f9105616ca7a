package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
)

// cred is how a request authenticates: Basic user/pass, a Bearer token,
// or nothing (the zero cred).
type cred struct{ user, pass, bearer string }

// send sends one request over c (nil: http.DefaultClient) with hdr, cred
// and body (nil: none). It is the one place the e2e tests build a request.
func send(ctx context.Context, c *http.Client, method, rawURL string, cr cred, hdr http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	switch {
	case cr.bearer != "":
		req.Header.Set("Authorization", "Bearer "+cr.bearer)
	case cr.user != "":
		req.SetBasicAuth(cr.user, cr.pass)
	}
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

// request is send that reads the whole answer, failing the test if the
// request cannot be made: it returns status, headers and body.
func request(ctx context.Context, t *testing.T, c *http.Client, method, rawURL string, cr cred, hdr http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	resp, err := send(ctx, c, method, rawURL, cr, hdr, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, rawURL, err)
	}
	return resp.StatusCode, resp.Header, b
}
