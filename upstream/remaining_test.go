package upstream

import (
	"net/http"
	"testing"
)

// TestRateLimitRemaining: the last RateLimit-Remaining an upstream sent is
// what the status page shows; none before one came.
func TestRateLimitRemaining(t *testing.T) {
	u, _ := qtUpstream(t, "https://registry.example", nil)
	if n, ok := u.RateLimitRemaining(); ok {
		t.Fatalf("RateLimitRemaining() = %d before any answer", n)
	}
	u.observe(u.eps[0], u.eps[0].pool.creds[0], &http.Response{StatusCode: 200, Header: http.Header{"Ratelimit-Remaining": {"77;w=21600"}}})
	if n, ok := u.RateLimitRemaining(); !ok || n != 77 {
		t.Fatalf("RateLimitRemaining() = %d, %v; want 77", n, ok)
	}
	u.observe(u.eps[0], u.eps[0].pool.creds[0], &http.Response{StatusCode: 200, Header: http.Header{}})
	if n, _ := u.RateLimitRemaining(); n != 77 {
		t.Errorf("an answer without the header changed it to %d", n)
	}
}
