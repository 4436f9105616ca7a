package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/cluster"
	"berth/config"

	"go.uber.org/zap/zaptest"
)

// startMember starts a cluster member with its peer API served, its clock
// offset by skew.
func startMember(t *testing.T, name string, join []string, skew time.Duration) *cluster.Cluster {
	t.Helper()
	peer := httptest.NewUnstartedServer(nil)
	t.Cleanup(peer.Close)
	c, err := cluster.Start(t.Context(), cluster.Config{
		NodeName: name, GossipAddr: "127.0.0.1:0", PeerAddr: peer.Listener.Addr().String(),
		Join: join, Secret: bytes.Repeat([]byte{7}, cluster.SecretSize),
	}, zaptest.NewLogger(t).Named(name), cluster.WithClock(func() time.Time { return time.Now().Add(skew) }))
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	peer.Config.Handler = c.RequirePeer(http.NotFoundHandler())
	peer.Start()
	return c
}

func TestDoctorClusterClocks(t *testing.T) {
	for _, tt := range []struct {
		skew   time.Duration
		status string
	}{{0, "ok"}, {10 * time.Second, "fail"}} {
		t.Run(tt.skew.String(), func(t *testing.T) {
			n1 := startMember(t, "node-1", nil, 0)
			startMember(t, "node-2", []string{n1.Self().GossipAddr}, tt.skew)
			for deadline := time.Now().Add(10 * time.Second); len(n1.Members()) < 2; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("node-2 did not join node-1")
				}
			}
			mux := http.NewServeMux()
			mux.Handle("GET /cluster/clocks", n1.ClocksHandler())
			admin := httptest.NewServer(mux)
			defer admin.Close()

			cfg := config.Config{Cluster: config.Cluster{GossipAddr: ":7946"}}
			d := &doctor{ctx: t.Context(), cfg: cfg, admin: admin.URL, client: admin.Client(), now: time.Now}
			d.checkClusterClocks()
			if len(d.out) != 1 {
				t.Fatalf("findings = %+v, want one", d.out)
			}
			f := d.out[0]
			if f.Status != tt.status {
				t.Fatalf("finding = %+v, want status %s", f, tt.status)
			}
			if tt.status == "fail" && (f.Check != "cluster-clock/node-2" || f.Fix == nil || !strings.Contains(f.Fix.Command, "timedatectl set-ntp true") ||
				!strings.Contains(f.Message, "node-2's clock is")) {
				t.Errorf("finding = %+v %+v, want node-2 10 s off with the NTP fix", f, f.Fix)
			}
		})
	}
}
