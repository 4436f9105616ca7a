package replicate

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth/config"
	"berth/internal/testclock"
	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// countReads makes every read of the store's queue or statuses r does
// count in the result.
func countReads(r *Replicator) *atomic.Int64 {
	var n atomic.Int64
	list := r.list
	r.list = func(ctx context.Context, kind, prefix string) ([]store.PolicyEntry, error) {
		n.Add(1)
		return list(ctx, kind, prefix)
	}
	return &n
}

// A scrape of berth_replication_queue and berth_replication_lag_seconds
// reads no queue, however often it comes: the gauges serve what Enqueue
// and the replicator's passes keep, and still tell the copies queued and
// the age of the oldest, before a pass, while the copies fail, after a
// restart and once they are done.
func TestReplicationGaugesReadNoQueue(t *testing.T) {
	ctx := context.Background()
	zl := zaptest.NewLogger(t)
	st := openStore(t, zl)
	clock := testclock.New()
	dest := config.Destination{URL: "http://127.0.0.1:1", Prefix: "site-a"}
	rules := []config.Replication{{Repositories: []string{"private/*"}, Destinations: []config.Destination{dest}}}
	var configured atomic.Bool // the destination; copies to one gone fail
	configured.Store(true)
	newR := func() (*Replicator, *prometheus.Registry, *atomic.Int64) {
		reg := prometheus.NewRegistry()
		r := New(Options{Store: st, Rules: func() []config.Replication {
			if configured.Load() {
				return rules
			}
			return nil
		}, Registerer: reg, Logger: zl, Now: clock.Now})
		return r, reg, countReads(r)
	}
	scrape := func(what string, reg *prometheus.Registry, reads *atomic.Int64, queue, lag float64) {
		t.Helper()
		before := reads.Load()
		for range 50 {
			if _, err := reg.Gather(); err != nil {
				t.Fatal(err)
			}
		}
		if n := reads.Load() - before; n != 0 {
			t.Fatalf("%s: 50 scrapes read the queue %d times", what, n)
		}
		if err := testutil.GatherAndCompare(reg, metricsText(queue, lag), "berth_replication_queue", "berth_replication_lag_seconds"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	r, reg, reads := newR()
	scrape("empty", reg, reads, 0, 0)
	const d = "sha256:0123456789012345678901234567890123456789012345678901234567890123"
	if err := r.Enqueue(ctx, "private/app", d, []string{"v1", "v2"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	scrape("queued, before a pass", reg, reads, 2, 30)
	if err := r.Enqueue(ctx, "private/app", d, []string{"v2"}); err != nil { // requeued, not a new copy
		t.Fatal(err)
	}
	scrape("requeued", reg, reads, 2, 30)

	configured.Store(false)
	if left, err := r.RunOnce(ctx); err != nil || left != 2 {
		t.Fatalf("failing pass: %d left, %v", left, err)
	}
	clock.Advance(10 * time.Second)
	scrape("failing", reg, reads, 2, 40)

	r, reg, reads = newR() // a restart: the first pass finds the queue
	scrape("restarted, before a pass", reg, reads, 0, 0)
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	scrape("restarted", reg, reads, 2, 40)
	if s, err := r.Statuses(ctx, "private/app", d); err != nil || len(s) != 1 || s[0].Status != Failed {
		t.Fatalf("statuses: %+v, %v", s, err)
	}

	// The queue is emptied the way a finished copy leaves it.
	for _, tag := range []string{"v1", "v2"} {
		it := item{Repo: "private/app", Tag: tag, Digest: d, Dest: dest.URL, Prefix: dest.Prefix}
		if err := st.DeletePolicy(ctx, kindQueue, it.key()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	scrape("emptied", reg, reads, 0, 0)
}

// metricsText is the gauges' exposition with these values.
func metricsText(queue, lag float64) *strings.Reader {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return strings.NewReader(`# HELP berth_replication_lag_seconds Age of the oldest copy still queued (0: none).
# TYPE berth_replication_lag_seconds gauge
berth_replication_lag_seconds ` + f(lag) + `
# HELP berth_replication_queue Copies queued for replication destinations.
# TYPE berth_replication_queue gauge
berth_replication_queue ` + f(queue) + "\n")
}
