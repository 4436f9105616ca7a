package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/internal/testclock"
	"berth/local"
	"berth/proxy"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// sessionsEnv is Berth over local repositories with local.maxOpenUploads
// 2, on a clock the test moves.
type sessionsEnv struct {
	t      *testing.T
	clock  *testclock.Clock
	store  *store.Store
	mirror *Mirror
	srv    *httptest.Server
}

func newSessionsEnv(t *testing.T) *sessionsEnv {
	t.Helper()
	e := &sessionsEnv{t: t, clock: testclock.New()}
	zl := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	var err error
	e.store, err = store.Open(context.Background(), t.TempDir(), store.Options{Logger: zl, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	p := proxy.New(e.store, upstream.Fixed(upstream.NewRouter(nil, "private")), proxy.Options{Logger: zl})
	t.Cleanup(p.Close)
	repos := local.New(e.store, local.Options{AutoCreate: true, Logger: zl, Now: e.clock.Now})
	e.mirror = New(p, repos, e.store, Options{MaxOpenUploads: func() int { return 2 }})
	e.srv = httptest.NewServer(registry.New(e.mirror, registry.WithLogger(zl)))
	t.Cleanup(e.srv.Close)
	return e
}

// open starts a session over HTTP (the client is 127.0.0.1) and returns
// the status, the location and the error message.
func (e *sessionsEnv) open() (int, string, string) {
	e.t.Helper()
	resp, err := http.Post(e.srv.URL+"/v2/private/app/blobs/uploads/", "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Errors []struct{ Code, Message string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	msg := ""
	if len(body.Errors) == 1 {
		msg = body.Errors[0].Code + ": " + body.Errors[0].Message
	}
	return resp.StatusCode, resp.Header.Get("Location"), msg
}

func (e *sessionsEnv) send(method, location string, body []byte) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+location, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wantFull checks that one more session is refused with 429 and a message
// that says how many are open and what to do.
func (e *sessionsEnv) wantFull(when string) {
	e.t.Helper()
	st, _, msg := e.open()
	if st != http.StatusTooManyRequests || !strings.HasPrefix(msg, "TOOMANYREQUESTS: 2 upload sessions") ||
		!strings.Contains(msg, "local.maxOpenUploads") || !strings.Contains(msg, "cancel") {
		e.t.Fatalf("%s: one more session: %d %q; want 429 TOOMANYREQUESTS saying 2 are open and what to do", when, st, msg)
	}
}

// TestOpenUploadsAreCappedPerClient: a client holds at most
// local.maxOpenUploads sessions; finishing, cancelling or the idle expiry
// of one frees a slot, and other clients have slots of their own.
func TestOpenUploadsAreCappedPerClient(t *testing.T) {
	e := newSessionsEnv(t)
	var locs []string
	for range 2 {
		st, loc, msg := e.open()
		if st != http.StatusAccepted {
			t.Fatalf("open: %d %s", st, msg)
		}
		locs = append(locs, loc)
	}
	e.wantFull("two open")

	// Another client (alice, by name) is not held to 127.0.0.1's count.
	repo, err := e.mirror.Resolve(registry.Repo{Name: "private/app"})
	if err != nil {
		t.Fatal(err)
	}
	alice := registry.WithClientKey(context.Background(), "user:alice")
	for i := range 3 {
		_, err := e.mirror.StartUpload(alice, registry.Repo{Name: "private/app", Target: repo})
		if wantErr := i == 2; (err != nil) != wantErr {
			t.Fatalf("alice's session %d: %v", i+1, err)
		}
	}

	// Cancelling one frees its slot.
	if st := e.send(http.MethodDelete, locs[0], nil); st != http.StatusNoContent {
		t.Fatalf("cancel: %d", st)
	}
	st, loc, msg := e.open()
	if st != http.StatusAccepted {
		t.Fatalf("open after a cancel: %d %s", st, msg)
	}
	e.wantFull("after the cancel's slot was taken")

	// Finishing one frees its slot.
	blob := []byte("a layer")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if st := e.send(http.MethodPut, loc+sep+"digest="+sha(blob), blob); st != http.StatusCreated {
		t.Fatalf("finish: %d", st)
	}
	if st, _, msg := e.open(); st != http.StatusAccepted {
		t.Fatalf("open after a finish: %d %s", st, msg)
	}
	e.wantFull("after the finish's slot was taken")

	// Idle sessions expire, and their slots with them.
	e.clock.Advance(2 * time.Hour)
	if _, err := e.store.ExpireUploads(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if st, _, msg := e.open(); st != http.StatusAccepted {
			t.Fatalf("open %d after the idle ones expired: %d %s", i+1, st, msg)
		}
	}
	e.wantFull("after expiry")
}

// Sessions of clients that never come back are forgotten once many are
// tracked, so the count's memory stays bounded.
func TestOpenUploadsForgetEndedSessionsOfEveryClient(t *testing.T) {
	var o openUploads
	ended := false
	open := func(context.Context, string) bool { return !ended }
	ctx := context.Background()
	for i := range minPrune {
		client := "ip:10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		if err := o.admit(ctx, client, 1, open); err != nil {
			t.Fatal(err)
		}
		o.opened(client, "id-"+strconv.Itoa(i))
	}
	ended = true // every one of them committed, cancelled or expired
	if err := o.admit(ctx, "user:alice", 1, open); err != nil {
		t.Fatal(err)
	}
	o.opened("user:alice", "")
	if o.tracked != 0 || len(o.by) != 0 || len(o.pending) != 0 {
		t.Fatalf("after the sessions ended: %d tracked, %d clients, %d pending", o.tracked, len(o.by), len(o.pending))
	}
}
