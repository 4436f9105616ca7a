package auth

import (
	"net/http"
	"testing"

	"berth/registry"

	"go.uber.org/zap/zaptest"
)

// Every token request is admitted by its client's bucket, as registry
// requests are: an anonymous one by its address's, a good login by its
// user's. Anonymous requests past the address's burst get 429
// TOOMANYREQUESTS and no token; a user's logins are not charged to the
// address, and past their own burst are refused too.
func TestTokenRequestsAreRateLimited(t *testing.T) {
	f := cfStart(t)
	ev, err := NewEvaluator(testPolicies(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const burst = 3
	h, err := NewTokenHandler(TokenHandlerConfig{Issuer: f.is, Authorizer: ev, Users: f.users,
		Requests: registry.NewLimiter(1.0/86400, burst)}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Config.Handler = h
	anonymous := func() int {
		resp, err := f.srv.Client().Get(f.srv.URL + "/token?service=berth")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range burst {
		if st := anonymous(); st != http.StatusOK {
			t.Fatalf("anonymous request %d: %d", i+1, st)
		}
	}
	if st := anonymous(); st != http.StatusTooManyRequests {
		t.Fatalf("anonymous request past the burst: %d, want 429", st)
	}
	for i := range burst {
		if st, _, msg := f.token(t, "alice", "wonderland", false); st != http.StatusOK {
			t.Fatalf("alice's login %d from the spent address: %d %s", i+1, st, msg)
		}
	}
	if st, _, _ := f.token(t, "alice", "wonderland", false); st != http.StatusTooManyRequests {
		t.Fatalf("alice's login past her burst: %d, want 429", st)
	}
	if st, _, msg := f.token(t, "bob", "builder", false); st != http.StatusOK {
		t.Fatalf("bob, with a bucket of his own: %d %s", st, msg)
	}
}
