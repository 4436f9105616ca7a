package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestAppendEventIsMarshal checks the log's encoder against json.Marshal,
// which it replaces, on events with every field, none, and strings that
// need escaping.
func TestAppendEventIsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 5, 14, 3, 4, 56789, time.FixedZone("x", 3600))
	for _, e := range []Event{
		{},
		{Time: at, Principal: "ci", SourceIP: "127.0.0.1", Action: "GetManifest", Repository: "lib/app",
			Reference: "v1", Digest: "sha256:" + string(bytes.Repeat([]byte("a"), 64)), Result: "ok", Status: 200, Bytes: 3411},
		{Time: at.UTC(), User: "eve<script>&\"\\", Action: "Login", Result: "denied", Status: 401, Target: "tab\there\nnl"},
		{Principal: "ü 雪 \u2028 \x00 \x7f \xff", Repository: "a/b", Bytes: -1},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendEvent(nil, &e)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("appendEvent = %s (%v)\n   Marshal = %s", got, ok, want)
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("ci", "10.0.0.1", "GetManifest", "lib/app", "v1<&>", int64(0), 200, int64(5))
	f.Fuzz(func(t *testing.T, principal, ip, action, repo, ref string, nanos int64, status int, n int64) {
		e := Event{Time: time.Unix(0, nanos), Principal: principal, User: ref, SourceIP: ip, Action: action,
			Repository: repo, Target: repo, Reference: ref, Digest: action, Result: principal, Status: status, Bytes: n}
		want, err := json.Marshal(e)
		got, ok := appendEvent(nil, &e)
		if (err == nil) != ok || (ok && !bytes.Equal(got, want)) {
			t.Fatalf("appendEvent = %s (%v)\n   Marshal = %s (%v)", got, ok, want, err)
		}
	})
}

func BenchmarkAppendEvent(b *testing.B) {
	e := Event{Time: time.Now(), Principal: "ci", SourceIP: "127.0.0.1", Action: "GetManifest", Repository: "lib/app",
		Reference: "v1", Result: "ok", Status: 200, Bytes: 3411}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendEvent(buf[:0], &e)
	}
}
