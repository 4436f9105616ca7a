package cluster

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// newPeerServer returns an unstarted server whose address goes into a
// node's config; serve starts it with the node's peer API.
func newPeerServer(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return srv
}

// serve starts srv with c's peer API (RequirePeer around a 404).
func serve(srv *httptest.Server, c *Cluster) {
	srv.Config.Handler = c.RequirePeer(http.NotFoundHandler())
	srv.Start()
}

func TestClocks(t *testing.T) {
	for _, tt := range []struct {
		name   string
		offset time.Duration
	}{
		{"small skew, signed requests pass", 10 * time.Second},
		{"skew beyond the peer-auth window", -time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p1, p2 := freePort(t), freePort(t)
			peer1, peer2 := newPeerServer(t), newPeerServer(t)
			s1 := testNode{name: "node-1", port: p1, peer: peer1.Listener.Addr().String()}
			s2 := testNode{name: "node-2", port: p2, join: []string{addr(p1)}, peer: peer2.Listener.Addr().String()}
			n1 := start(t, s1, withMemberlist(steadyMemberlist))
			n2 := start(t, s2, withMemberlist(steadyMemberlist), WithClock(func() time.Time { return time.Now().Add(tt.offset) }))
			serve(peer1, n1)
			serve(peer2, n2)
			eventually(t, "two members", func() error { return converged([]*Cluster{n1, n2}, "node-1", "node-2") })

			got := n1.Clocks(t.Context())
			if len(got) != 1 || got[0].Member != "node-2" || got[0].Err != nil {
				t.Fatalf("Clocks on node-1 = %+v, want one reading of node-2", got)
			}
			if diff := (got[0].Offset - tt.offset).Abs(); diff > got[0].RoundTrip/2+50*time.Millisecond {
				t.Errorf("node-2's offset = %s (round trip %s), want about %s", got[0].Offset, got[0].RoundTrip, tt.offset)
			}
			back := n2.Clocks(t.Context())
			if len(back) != 1 || (back[0].Offset+tt.offset).Abs() > back[0].RoundTrip/2+50*time.Millisecond {
				t.Errorf("Clocks on node-2 = %+v, want node-1 at about %s", back, -tt.offset)
			}

			rec := httptest.NewRecorder()
			n1.ClocksHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cluster/clocks", nil))
			var body struct {
				Self    string      `json:"self"`
				Members []clockJSON `json:"members"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Self != "node-1" || len(body.Members) != 1 {
				t.Fatalf("GET /cluster/clocks = %d %s (%v)", rec.Code, rec.Body, err)
			}
			if off := body.Members[0].OffsetSeconds; off < tt.offset.Seconds()-1 || off > tt.offset.Seconds()+1 {
				t.Errorf("offsetSeconds = %v, want about %v", off, tt.offset.Seconds())
			}
		})
	}
}

func TestClocksUnreachableMember(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	n1 := start(t, testNode{name: "node-1", port: p1}, withMemberlist(steadyMemberlist))
	gone := newPeerServer(t)
	gone.Listener.Close()
	n2 := start(t, testNode{name: "node-2", port: p2, join: []string{addr(p1)}, peer: gone.Listener.Addr().String()}, withMemberlist(steadyMemberlist))
	eventually(t, "two members", func() error { return converged([]*Cluster{n1, n2}, "node-1", "node-2") })
	// node-2's peer API is closed: the reading says why.
	got := n1.Clocks(t.Context())
	var op *net.OpError
	if len(got) != 1 || !errors.As(got[0].Err, &op) {
		t.Fatalf("Clocks = %+v, want a connection error for node-2", got)
	}
}
