package replicate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/config"
	"berth/internal/testclock"
	"berth/local"
	"berth/registry"
	"berth/store"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// A push queued for replication is copied to the destination; while the
// destination is down the copy fails and backs off, survives a new
// Replicator over the same store (a restart), and completes once the
// destination is back.
func TestReplicateSurvivesFailuresAndRestarts(t *testing.T) {
	ctx := context.Background()
	zl := zaptest.NewLogger(t)
	st := openStore(t, zl)
	src := httptest.NewServer(registry.New(local.New(st, local.Options{AutoCreate: true, DefaultMutability: "MUTABLE", Logger: zl}), registry.WithLogger(zl)))
	t.Cleanup(src.Close)
	img := testreg.Image(t, 5, 3000, 4000)
	host := strings.TrimPrefix(src.URL, "http://")
	if err := crane.Push(img, host+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()

	dest := testreg.Start(t)
	down := true
	dest.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return down
	})
	clock := testclock.New()
	rules := []config.Replication{{Repositories: []string{"private/*"}, Destinations: []config.Destination{{URL: dest.URL, Prefix: "site-a"}}}}
	newR := func() *Replicator {
		return New(Options{Store: st, Rules: func() []config.Replication { return rules }, Logger: zl, Now: clock.Now})
	}
	r := newR()
	if err := r.Enqueue(ctx, "private/app", d.String(), []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if left, err := r.RunOnce(ctx); err != nil || left != 1 {
		t.Fatalf("with the destination down: %d left, %v", left, err)
	}
	if s, _ := r.Statuses(ctx, "private/app", d.String()); len(s) != 1 || s[0].Status != Failed {
		t.Fatalf("status while down: %+v", s)
	}
	// A restart: a new Replicator finds the queue; the retry waits its backoff.
	down = false
	r = newR()
	if left, _ := r.RunOnce(ctx); left != 1 {
		t.Fatalf("the retry ran before its backoff: %d left", left)
	}
	clock.Advance(time.Minute)
	if left, err := r.RunOnce(ctx); err != nil || left != 0 {
		t.Fatalf("after the backoff: %d left, %v", left, err)
	}
	got, err := crane.Digest(dest.Host() + "/site-a/private/app:v1")
	if err != nil || got != d.String() {
		t.Fatalf("the destination has %s (%v), want %s", got, err, d)
	}
	if s, _ := r.Statuses(ctx, "private/app", d.String()); len(s) != 1 || s[0].Status != Complete {
		t.Fatalf("status after the copy: %+v", s)
	}
	// Idempotent: the same copy again sends no blob.
	dest.Reset()
	if err := r.Enqueue(ctx, "private/app", d.String(), []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if left, err := r.RunOnce(ctx); err != nil || left != 0 || dest.Count("PATCH uploads")+dest.Count("PUT uploads") != 0 {
		t.Fatalf("a second copy: %d left, %v, requests %v", left, err, dest.Requests())
	}
}

// openStore opens a store in a directory of the test's, closed with it.
func openStore(t *testing.T, log *zap.Logger) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
