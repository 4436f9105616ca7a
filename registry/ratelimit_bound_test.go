package registry

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestLimiterKeepsBoundedClients: clients with endless addresses hold at
// most maxClients buckets; each new one is still admitted, and a client
// whose bucket was kept is still limited by it.
func TestLimiterKeepsBoundedClients(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1.0/86400, 1)
	const n = maxClients + 1000
	now := limiterEpoch
	for i := range n {
		if err := l.Admit(fmt.Sprintf("ip:2001:db8::%x", i), manifestRoute("r"), now); err != nil {
			t.Fatalf("client %d, first request: %v", i, err)
		}
	}
	if got := l.Clients(); got != maxClients {
		t.Errorf("the limiter keeps %d buckets, want %d", got, maxClients)
	}
	last := fmt.Sprintf("ip:2001:db8::%x", n-1)
	err := l.Admit(last, manifestRoute("r"), now)
	if err == nil {
		t.Fatal("the last client's second request was admitted with its bucket empty")
	}
	checkTooMany(t, err)
}

// TestLoginFailuresKeepNoLongNames: a failed login's bucket names a long
// user name by its hash: the same name still backs off after
// LoginFailureBurst failures, another long name has its own bucket, and
// hundreds of 64 KiB names keep a few dozen bytes each.
func TestLoginFailuresKeepNoLongNames(t *testing.T) {
	g := NewLogins(nil)
	const addr = "192.0.2.7"
	long := strings.Repeat("u", 64<<10)
	now := limiterEpoch
	fail := func(user string) error {
		h, err := g.Hold(addr, user, now)
		if err == nil {
			h.Failed(now)
		}
		return err
	}
	for i := range LoginFailureBurst {
		if err := fail(long); err != nil {
			t.Fatalf("failure %d refused: %v", i+1, err)
		}
	}
	if err := fail(long); err == nil {
		t.Fatalf("failure %d with the same long name was checked", LoginFailureBurst+1)
	} else {
		checkTooMany(t, err)
	}
	if err := fail(long + "v"); err != nil {
		t.Fatalf("another long name shares the first one's bucket: %v", err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const names = 400 // 25 MiB of names
	for i := range names {
		if err := fail(fmt.Sprintf("%d-%s", i, long)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > names*1024 {
		t.Errorf("%d failed logins with 64 KiB names keep %d bytes, want under 1 KiB each", names, grew)
	}
	for k := range g.failures.clients {
		if len(k) > len(addr)+1+maxKeptUser {
			t.Errorf("a failure bucket is named by %d bytes", len(k))
		}
	}
}
