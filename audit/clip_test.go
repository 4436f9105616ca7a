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

// What an event keeps of a client's text is bounded: a 256 KiB user name,
// action (an admin request's path), target or any other text field is
// written as its first registry.MaxClip bytes and its length, and what
// waits in memory holds nothing more of it.
func TestEventsKeepBoundedClientText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{MaxBytes: 1 << 30, Keep: 1, Buffer: 16, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("u", 256<<10)
	l.Log(Event{Time: time.Unix(0, 0), Principal: long, User: long, Target: long, SourceIP: "192.0.2.1", Action: long,
		Repository: long, Reference: long, Digest: long, Result: "UNAUTHORIZED"})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 8*(registry.MaxClip+32) {
		t.Fatalf("the event takes %d bytes of the log", len(b))
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	want := long[:registry.MaxClip] + "… (262144 bytes)"
	for name, got := range map[string]string{"principal": e.Principal, "user": e.User, "action": e.Action, "target": e.Target,
		"repository": e.Repository, "reference": e.Reference, "digest": e.Digest} {
		if got != want {
			t.Errorf("%s: %.20q… (%d bytes); want %d bytes ending %q", name, got, len(got), len(want), "… (262144 bytes)")
		}
	}
}
