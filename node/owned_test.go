package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"berth/cluster"
	"berth/internal/testclock"
	"berth/store"
	"berth/test/testport"

	"go.uber.org/zap/zaptest"
)

// putBlobs commits one blob of each size to st and returns digest -> size.
func putBlobs(t *testing.T, st *store.Store, seed byte, sizes ...int) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for i, size := range sizes {
		data := make([]byte, size)
		for j := range data {
			data[j] = seed + byte(i) + byte(j)
		}
		sum := sha256.Sum256(data)
		d := "sha256:" + hex.EncodeToString(sum[:])
		w, err := st.NewBlobWriter(t.Context(), d, int64(size))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		out[d] = int64(size)
	}
	return out
}

// countSweeps makes every walk of the store tr does count in the result.
func countSweeps(tr *ownedTracker) *atomic.Int64 {
	var n atomic.Int64
	walk := tr.walk
	tr.walk = func(ctx context.Context, fn func(string, int64) error) error {
		n.Add(1)
		return walk(ctx, fn)
	}
	return &n
}

// expectedOwned sums, per name, the sizes of the blobs that Rank gives
// that name among the top two of names: what the cluster's Owners says
// with Replicas 2 and those members alive.
func expectedOwned(blobs map[string]int64, names []string) map[string]int64 {
	out := map[string]int64{}
	for d, size := range blobs {
		for _, name := range cluster.Rank(names, d, 2) {
			out[name] += size
		}
	}
	return out
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestOwnedBytesPerOwner: on a small real store, each member's figure is
// the sum of the sizes of the blobs it owns, dated when the walk began.
func TestOwnedBytesPerOwner(t *testing.T) {
	st := openStore(t)
	blobs := putBlobs(t, st, 1, 10, 200, 3000, 40000, 5, 66, 777)
	names := []string{"node-a", "node-b", "node-c"}
	clock := testclock.New()
	tr := newOwnedTracker(st, func(d string) []string { return cluster.Rank(names, d, 2) }, zaptest.NewLogger(t))
	tr.now = clock.Now
	if got := tr.Figures(); got.Bytes != nil || !got.AsOf.IsZero() {
		t.Fatalf("figures before any computation: %+v", got)
	}
	if err := tr.compute(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := tr.Figures()
	want := expectedOwned(blobs, names)
	if !maps.Equal(got.Bytes, want) || !got.AsOf.Equal(clock.Now()) {
		t.Fatalf("figures %v as of %v, want %v as of %v", got.Bytes, got.AsOf, want, clock.Now())
	}
	var total, owned int64
	for _, size := range blobs {
		total += size
	}
	for _, b := range got.Bytes {
		owned += b
	}
	if owned != 2*total {
		t.Fatalf("owned bytes add up to %d, want twice the %d stored", owned, total)
	}
}

type membersAnswer struct {
	Self           string
	OwnedBytesAsOf *string
	Members        []struct {
		Name       string
		OwnedBytes int64
	}
}

// TestMembersNeverScanOnRequest: GET /cluster/members on a node's admin
// listener never walks the store, however many requests come at once:
// before the first computation it answers without owned bytes, after it
// with the computed figures and their date.
func TestMembersNeverScanOnRequest(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(hex.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newReloadEnv(t, fmt.Sprintf(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
cluster: {nodeName: solo, gossipAddr: "127.0.0.1:0", peerAddr: "127.0.0.1:%d", secretFile: %q}
`, testport.Free(t), secret))
	t.Cleanup(func() { _ = e.n.cluster.Shutdown(context.Background()) })
	blobs := putBlobs(t, e.n.store, 7, 100, 2000, 30000)
	sweeps := countSweeps(e.n.owned)

	before := members(t, e, 50)
	for _, a := range before {
		if a.OwnedBytesAsOf != nil || len(a.Members) != 1 || a.Members[0].OwnedBytes != 0 {
			t.Fatalf("before the first computation: %+v", a)
		}
	}
	if n := sweeps.Load(); n != 0 {
		t.Fatalf("50 requests walked the store %d times", n)
	}

	clock := testclock.New()
	e.n.owned.now = clock.Now
	if err := e.n.owned.compute(t.Context()); err != nil {
		t.Fatal(err)
	}
	after := members(t, e, 50)
	want := expectedOwned(blobs, []string{"solo"})
	for _, a := range after {
		if a.OwnedBytesAsOf == nil || *a.OwnedBytesAsOf != "2026-01-02T03:04:05Z" || len(a.Members) != 1 || a.Members[0].OwnedBytes != want["solo"] {
			t.Fatalf("after the computation: %+v, want solo owning %d", a, want["solo"])
		}
	}
	if n := sweeps.Load(); n != 1 {
		t.Fatalf("one computation and 50 requests walked the store %d times, want 1", n)
	}
}

// members sends n concurrent GET /cluster/members and returns the answers.
func members(t *testing.T, e *reloadEnv, n int) []membersAnswer {
	t.Helper()
	out := make([]membersAnswer, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, e.admin.URL+"/cluster/members", nil)
			if code := e.do(req, &out[i]); code != http.StatusOK {
				t.Errorf("GET /cluster/members: %d", code)
			}
		})
	}
	wg.Wait()
	return out
}

// TestOwnedRecomputesWhenDue: the tracker computes at start, then once per
// membership change however many kicks come, once the store's totals
// change, and when the figures are ownedSchedule.MaxAge old; never more often than
// ownedSchedule.MinGap, and not at all while nothing changes.
func TestOwnedRecomputesWhenDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t)
		blobs := putBlobs(t, st, 3, 11, 222, 3333)
		var mu sync.Mutex
		names := []string{"node-a", "node-b"}
		tr := newOwnedTracker(st, func(d string) []string {
			mu.Lock()
			defer mu.Unlock()
			return cluster.Rank(names, d, 2)
		}, zaptest.NewLogger(t))
		sweeps := countSweeps(tr)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); tr.Run(ctx) }()
		step := func(what string, d time.Duration, want int64) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if n := sweeps.Load(); n != want {
				t.Fatalf("%s: %d computations, want %d", what, n, want)
			}
		}
		step("at start", 0, 1)
		step("nothing changes for four minutes", 4*time.Minute, 1)

		mu.Lock()
		names = []string{"node-a", "node-b", "node-c"}
		mu.Unlock()
		for range 10 {
			tr.Changed()
		}
		step("ten kicks for one membership change", 0, 2)
		if got, want := tr.Figures().Bytes, expectedOwned(blobs, []string{"node-a", "node-b", "node-c"}); !maps.Equal(got, want) {
			t.Fatalf("after the change: %v, want %v", got, want)
		}
		tr.Changed()
		step("a kick within the gap", ownedSchedule.MinGap/2, 2)
		step("the gap has passed", ownedSchedule.MinGap/2, 3)

		maps.Copy(blobs, putBlobs(t, st, 9, 44444))
		step("a blob came", ownedSchedule.CheckEvery, 4)
		if got, want := tr.Figures().Bytes, expectedOwned(blobs, []string{"node-a", "node-b", "node-c"}); !maps.Equal(got, want) {
			t.Fatalf("after the new blob: %v, want %v", got, want)
		}
		step("the figures grew old", ownedSchedule.MaxAge-ownedSchedule.CheckEvery, 4)
		step("the figures grew old", ownedSchedule.CheckEvery, 5)
		if asOf := tr.Figures().AsOf; !asOf.Equal(time.Now()) {
			t.Fatalf("figures as of %v, now %v", asOf, time.Now())
		}
		cancel()
		<-done
	})
}
