package registry

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// shGet fetches path from srv as the client at addr at the same time as
// the other calls, and reports when its body was complete.
func shGet(t *testing.T, srv http.Handler, path, addr string, want []byte, start time.Time, done *time.Duration) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("%s: %d, %d bytes", addr, rec.Code, rec.Body.Len())
	}
	*done = time.Since(start)
}

// A client's blob bodies are paced to its serveBandwidth, apart from other
// clients', and its streams beyond maxStreams wait for a slot rather than
// fail.
func TestShaperPacesPerClient(t *testing.T) {
	const size, rate = 64 << 10, 16 << 10
	data := bytes.Repeat([]byte("shaped "), size/7+1)[:size]
	for _, tt := range []struct {
		name    string
		streams int
		addrs   []string
		want    []time.Duration // when each body is complete
	}{
		// One bucket for the client: 128 KiB less the bucket's 16 KiB at
		// 16 KiB/s, 7 s. The streams take turns, 16 KiB each; the first,
		// which had the bucket's piece and the first turn before the
		// second began, ends at 5 s.
		{name: "one client, two streams", addrs: []string{"192.0.2.1:1", "192.0.2.1:2"}, want: []time.Duration{5 * time.Second, 7 * time.Second}},
		// One stream at a time: the second waits for the first (3 s), then
		// takes its 64 KiB at the rate (4 s more).
		{name: "one client, one stream at a time", streams: 1, addrs: []string{"192.0.2.1:1", "192.0.2.1:2"}, want: []time.Duration{3 * time.Second, 7 * time.Second}},
		// Two clients have a bucket each.
		{name: "two clients", addrs: []string{"192.0.2.1:1", "192.0.2.2:1"}, want: []time.Duration{3 * time.Second, 3 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				be := newMemBackend()
				d := be.addBlob("library/app", newMemBlob(data))
				sh := NewShaper(func() ShapeLimits { return ShapeLimits{BytesPerSecond: rate, MaxStreams: tt.streams} })
				srv := New(be, WithShaper(sh))
				start := time.Now()
				done := make([]time.Duration, len(tt.addrs))
				var wg sync.WaitGroup
				for i, addr := range tt.addrs {
					wg.Go(func() { shGet(t, srv, "/v2/library/app/blobs/"+d.String(), addr, data, start, &done[i]) })
					synctest.Wait() // the first has its slot before the second asks
				}
				wg.Wait()
				got := append([]time.Duration(nil), done...)
				if got[0] > got[1] {
					got[0], got[1] = got[1], got[0]
				}
				for i := range got {
					if d := got[i] - tt.want[i]; d < -200*time.Millisecond || d > 200*time.Millisecond {
						t.Errorf("bodies complete at %v, want about %v", got, tt.want)
						break
					}
				}
				if sh.Throttled() == 0 {
					t.Error("Throttled() = 0")
				}
			})
		})
	}
}
