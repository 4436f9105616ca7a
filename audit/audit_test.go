package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestEventsWrittenOnceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		l.Log(Event{Time: time.Unix(int64(i), 0).UTC(), Principal: "alice", Action: "PutImage", Repository: "private/app", Status: 201, Bytes: int64(i)})
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := readEvents(t, path)
	if len(ev) != 100 {
		t.Fatalf("%d events, want 100", len(ev))
	}
	for i, e := range ev {
		if e.Bytes != int64(i) || e.Principal != "alice" || e.Action != "PutImage" {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
}

func TestRotationBySize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{MaxBytes: 2000, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		l.Log(Event{Principal: "bob", Action: "BatchGetImage", Repository: "private/app"})
	}
	l.Close(context.Background())
	total := 0
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > 2000 {
			t.Fatalf("%s is %d bytes, over the 2000-byte limit", p, st.Size())
		}
		total += len(readEvents(t, p))
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more rotated files kept than Keep")
	}
	if total == 0 || total > 100 {
		t.Fatalf("%d events across kept files", total)
	}
}

// TestNeverBlocks: with a writer that cannot keep up (tiny buffer), Log
// returns at once and counts what it dropped.
func TestNeverBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 100000 {
		l.Log(Event{Action: "x"})
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("logging 100000 events took %v", el)
	}
	l.Close(context.Background())
	if l.Dropped()+l.Written() != 100000 {
		t.Fatalf("dropped %d + written %d != 100000", l.Dropped(), l.Written())
	}
}
