package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// HeaderTime carries the answering node's clock (RFC 3339 with
// nanoseconds) on every peer-API answer, refusals included, so that a
// member can measure another's clock even when the skew is too large for
// its signed requests to pass.
const HeaderTime = "X-Berth-Time"

// clockPath is the peer-API path RequirePeer answers itself (204) for
// clock readings.
const clockPath = "/cluster/clock"

// ClockReading is one member's clock as this node measured it: Offset is
// the member's clock minus this node's at the middle of the round trip,
// good to within half of RoundTrip. Err is set when the member did not
// answer or sent no time.
type ClockReading struct {
	Member    string
	Offset    time.Duration
	RoundTrip time.Duration
	Err       error
}

// Clocks measures the clock of every other alive member by asking its
// peer API for the time, all members at once, each bounded by ctx.
func (c *Cluster) Clocks(ctx context.Context) []ClockReading {
	var others []Member
	for _, m := range c.Members() {
		if !m.Self && m.State == StateAlive && m.PeerAddr != "" {
			others = append(others, m)
		}
	}
	out := make([]ClockReading, len(others))
	var wg sync.WaitGroup
	for i, m := range others {
		wg.Go(func() { out[i] = c.readClock(ctx, m) })
	}
	wg.Wait()
	return out
}

// readClock asks one member for its time.
func (c *Cluster) readClock(ctx context.Context, m Member) ClockReading {
	r := ClockReading{Member: m.Name}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.PeerURL(m)+clockPath, nil)
	if err != nil {
		r.Err = err
		return r
	}
	sent := c.opts.now()
	resp, err := c.client.Do(req)
	received := c.opts.now()
	if err != nil {
		r.Err = fmt.Errorf("ask %s for its time: %w", m.Name, err)
		return r
	}
	resp.Body.Close()
	theirs, err := time.Parse(time.RFC3339Nano, resp.Header.Get(HeaderTime))
	if err != nil {
		r.Err = fmt.Errorf("%s answered %d without its time (%s header): is it an older Berth? %w", m.Name, resp.StatusCode, HeaderTime, err)
		return r
	}
	r.RoundTrip = received.Sub(sent)
	r.Offset = theirs.Sub(sent.Add(r.RoundTrip / 2))
	return r
}

type clockJSON struct {
	Name string `json:"name"`
	// OffsetSeconds is the member's clock minus the answering node's.
	OffsetSeconds    float64 `json:"offsetSeconds"`
	RoundTripSeconds float64 `json:"roundTripSeconds"`
	Error            string  `json:"error,omitempty"`
}

// ClocksHandler serves GET with this node's reading of the other alive
// members' clocks: {"self": name, "members": [{"name", "offsetSeconds",
// "roundTripSeconds", "error"}]}. Each request asks every member, so it
// is for tools (berth doctor), not for polling. It does not authenticate:
// wrap it in an admin guard.
func (c *Cluster) ClocksHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		out := struct {
			Self    string      `json:"self"`
			Members []clockJSON `json:"members"`
		}{Self: c.set.name, Members: []clockJSON{}}
		for _, rd := range c.Clocks(ctx) {
			cj := clockJSON{Name: rd.Member, OffsetSeconds: rd.Offset.Seconds(), RoundTripSeconds: rd.RoundTrip.Seconds()}
			if rd.Err != nil {
				cj.Error = rd.Err.Error()
			}
			out.Members = append(out.Members, cj)
		}
		writeJSON(w, r, out)
	})
}
