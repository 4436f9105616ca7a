package registry

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestLimiterRemembersBoundedPulls: a client naming a new repository in
// every manifest request holds at most maxPulls of them; the latest still
// get their grace, the oldest lose it first.
func TestLimiterRemembersBoundedPulls(t *testing.T) {
	t.Parallel()
	// Tokens enough for every manifest below, none to spare after.
	const n = 3 * maxPulls
	l := NewLimiter(1.0/86400, n)
	const client = "10.0.0.1"
	for i := range n {
		if err := l.Admit(client, manifestRoute(fmt.Sprintf("r%d", i)), limiterEpoch.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatalf("manifest %d refused: %v", i, err)
		}
	}
	if got := len(l.clients[client].pulls); got != maxPulls {
		t.Errorf("the limiter remembers %d pulls of the client, want %d", got, maxPulls)
	}
	now := limiterEpoch.Add(time.Second)
	if err := l.Admit(client, blobRoute("drain"), now); err == nil {
		t.Fatal("bucket is not empty")
	}
	for _, i := range []int{n - 1, n - maxPulls} {
		if err := l.Admit(client, blobRoute(fmt.Sprintf("r%d", i)), now); err != nil {
			t.Errorf("blob of the pull of r%d (one of the latest %d) refused: %v", i, maxPulls, err)
		}
	}
	for _, i := range []int{0, n - maxPulls - 1} {
		err := l.Admit(client, blobRoute(fmt.Sprintf("r%d", i)), now)
		if err == nil {
			t.Errorf("blob of the forgotten pull of r%d admitted with an empty bucket", i)
			continue
		}
		checkTooMany(t, err)
	}
}

// TestLimiterPullsPastGraceGoFirst: at the bound, pulls older than the
// grace period are forgotten before any recent one.
func TestLimiterPullsPastGraceGoFirst(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1.0/86400, 2*maxPulls)
	const client = "10.0.0.1"
	for i := range maxPulls - 1 {
		_ = l.Admit(client, manifestRoute(fmt.Sprintf("old%d", i)), limiterEpoch)
	}
	later := limiterEpoch.Add(time.Minute)
	_ = l.Admit(client, manifestRoute("recent"), later)
	now := limiterEpoch.Add(l.grace + 30*time.Second)
	_ = l.Admit(client, manifestRoute("new"), now)
	pulls := l.clients[client].pulls
	if len(pulls) != 2 {
		t.Errorf("pulls remembered = %d, want the recent and the new one", len(pulls))
	}
	for _, name := range []string{"recent", "new"} {
		if _, ok := pulls[Repo{Name: name}]; !ok {
			t.Errorf("the pull of %s was forgotten", name)
		}
	}
}

// TestUnlimitedLimiterRemembersNoPulls: with rate limiting off nothing is
// refused, so no pull needs remembering.
func TestUnlimitedLimiterRemembersNoPulls(t *testing.T) {
	t.Parallel()
	l := NewLimiter(math.Inf(1), 1)
	for i := range 100 {
		if err := l.Admit("10.0.0.1", manifestRoute(fmt.Sprintf("r%d", i)), limiterEpoch); err != nil {
			t.Fatal(err)
		}
		if err := l.Admit("10.0.0.1", blobRoute(fmt.Sprintf("r%d", i)), limiterEpoch); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(l.clients["10.0.0.1"].pulls); got != 0 {
		t.Errorf("an unlimited limiter remembers %d pulls", got)
	}
}
