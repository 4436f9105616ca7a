package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// replicationStatus is the image's status at its one destination, "" when
// none is recorded.
func replicationStatus(t *testing.T, b *Berth, tag string) string {
	t.Helper()
	var r struct {
		ReplicationStatuses []struct{ Status string } `json:"replicationStatuses"`
	}
	out := mustRun(t, b, "describe-image-replication-status", "--repository-name", "private/app", "--image-id", "imageTag="+tag)
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("describe-image-replication-status: %v\n%s", err, out)
	}
	if len(r.ReplicationStatuses) == 0 {
		return ""
	}
	return r.ReplicationStatuses[0].Status
}

// TestReplicationSurvivesKill9: a push is queued for a destination that
// fails; berth is killed with SIGKILL mid-queue; after the restart the
// copy completes with the same digest.
func TestReplicationSurvivesKill9(t *testing.T) {
	dest := testreg.Start(t)
	down := make(chan struct{})
	dest.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-down:
			return false
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
	})
	b := StartBerth(t, "", "upstreams: []\nreplication: [{repositories: [\"private/*\"], destinations: [{url: "+dest.URL+", prefix: site-a}]}]\n")
	img := testreg.Image(t, 81, 4000, 5000)
	if err := crane.Push(img, b.Addr+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	// The node logs a failed copy, then records its status: asked after
	// each line it logs from then on, the status shows FAILED (by the next
	// retry's line at the latest).
	b.WaitLog("the failed copy recorded", 30*time.Second, func(log string) bool {
		return strings.Contains(log, `"msg":"replication failed; will try again"`) && replicationStatus(t, b, "v1") == "FAILED"
	})

	b.Kill()
	close(down)
	b.Restart()
	// "replicated" is logged once the copy is at the destination and its
	// status recorded.
	b.WaitLog("the copy after the restart", 60*time.Second, func(log string) bool {
		return strings.Contains(log, `"msg":"replicated"`)
	})
	if got, err := crane.Digest(dest.Host() + "/site-a/private/app:v1"); err != nil || got != d.String() {
		t.Fatalf("the copy at the destination: %s, %v; want %s", got, err, d)
	}
	if got := replicationStatus(t, b, "v1"); got != "COMPLETE" {
		t.Fatalf("replication status %q, want COMPLETE", got)
	}
}
