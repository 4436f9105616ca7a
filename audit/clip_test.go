package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/registry"

	"go.uber.org/zap/zaptest"
)

// What an event keeps of a client's text is bounded: a 256 KiB user name
// or target is written as its first registry.MaxClip bytes and its length, and
// what waits in memory holds nothing more of it.
func TestEventsKeepBoundedClientText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{MaxBytes: 1 << 30, Keep: 1, Buffer: 16, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("u", 256<<10)
	l.Log(Event{Time: time.Unix(0, 0), User: long, Target: long, SourceIP: "192.0.2.1", Action: "GetAuthorizationToken", Result: "UNAUTHORIZED"})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 4*registry.MaxClip {
		t.Fatalf("the event takes %d bytes of the log", len(b))
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	want := long[:registry.MaxClip] + "… (262144 bytes)"
	if e.User != want || e.Target != want {
		t.Errorf("user %.20q… (%d bytes), target %d bytes; want %d bytes ending %q", e.User, len(e.User), len(e.Target), len(want), "… (262144 bytes)")
	}
}
