package upstream

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"berth/test/testreg"
)

// Two fills under a node cap of 32 KiB/s share it: together they take the
// time the cap allows for their bytes, each about as long as the other,
// and neither is cut by the idle timeout while it waits its turn.
func TestBandwidthSharedFairly(t *testing.T) {
	const size, rate = 160 << 10, 32 << 10
	reg := testreg.Start(t)
	a := testreg.Bytes(size, 1)
	b := testreg.Bytes(size, 2)
	da := ctPushBlob(t, reg, "team/a", "v1", a)
	db := ctPushBlob(t, reg, "team/b", "v1", b)
	synctest.Test(t, func(t *testing.T) {
		node := NewBandwidth(rate)
		rule := NewBandwidth(0) // no cap of its own
		u, _ := ctInProcess(t, reg, func(r *Rule) { r.Timeout = 5 * time.Second; r.IdleTimeout = 400 * time.Millisecond },
			WithBandwidth(rule, node, nil))
		start := time.Now()
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		for i, blob := range []struct {
			repo, digest string
			data         []byte
		}{{"team/a", da, a}, {"team/b", db, b}} {
			wg.Go(func() {
				rc, _, err := u.GetBlobRange(context.Background(), blob.repo, blob.digest, 0, -1)
				if err != nil {
					t.Errorf("GetBlobRange(%s): %v", blob.repo, err)
					return
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err != nil || !bytes.Equal(got, blob.data) {
					t.Errorf("%s: %d bytes, %v", blob.repo, len(got), err)
				}
				took[i] = time.Since(start)
			})
		}
		wg.Wait()
		// The cap's bucket holds one piece at the start; the rest comes
		// at the cap's rate.
		want := time.Duration(float64(2*size-paceChunk) / rate * float64(time.Second))
		total := max(took[0], took[1])
		if total < want-100*time.Millisecond || total > want+100*time.Millisecond {
			t.Errorf("both fills took %s, want about %s", total, want)
		}
		if first := min(took[0], took[1]); first < want*8/10 {
			t.Errorf("one fill finished at %s of %s: the cap was not shared", first, total)
		}
		if p := u.Paced(); p < want {
			t.Errorf("Paced() = %s, want at least %s (two readers waiting)", p, want)
		}
	})
}

// A cap changed while fills run applies to them at once; 0 lifts it.
func TestBandwidthSetRate(t *testing.T) {
	b := NewBandwidth(1000)
	if b.Rate() != 1000 {
		t.Fatalf("Rate() = %d", b.Rate())
	}
	b.SetRate(0)
	if b.Rate() != 0 {
		t.Fatalf("Rate() after SetRate(0) = %d", b.Rate())
	}
	synctest.Test(t, func(t *testing.T) {
		b := NewBandwidth(paceChunk) // one piece a second
		u := &Upstream{quota: newQuota(Rule{}), caps: []*Bandwidth{b}}
		start := time.Now()
		for range 3 { // the bucket's piece, then two at one a second
			if err := u.pace(context.Background(), paceChunk); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Fatalf("three pieces took %s, want 2s", got)
		}
		b.SetRate(4 * paceChunk)
		start = time.Now()
		for range 4 {
			u.pace(context.Background(), paceChunk)
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("four pieces at the new rate took %s, want 1s", got)
		}
	})
}

// A cap set to none (the node-wide cap of a node without one, say) leaves
// a fill's reads whole; one that limits cuts them into pieces, and a
// reload that sets or clears it applies to the next read.
func TestUnlimitedCapReadsWhole(t *testing.T) {
	node, rule := NewBandwidth(0), NewBandwidth(0)
	u := &Upstream{}
	WithBandwidth(rule, node)(u)
	const ask = 256 << 10
	if got := u.readSize(ask); got != ask {
		t.Errorf("no cap limits: a read asks for %d bytes, want %d", got, ask)
	}
	node.SetRate(1 << 20)
	if got := u.readSize(ask); got != paceChunk {
		t.Errorf("the node cap limits: a read asks for %d bytes, want %d", got, paceChunk)
	}
	node.SetRate(0)
	if got := u.readSize(ask); got != ask {
		t.Errorf("the cap was cleared: a read asks for %d bytes, want %d", got, ask)
	}
}
