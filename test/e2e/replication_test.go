package e2e

import (
	"encoding/json"
	"net/http"
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

// waitUntil polls cond (the node works on its own schedule) until it holds
// or the deadline passes.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	waitUntil(t, "the failed copy recorded", 30*time.Second, func() bool { return replicationStatus(t, b, "v1") == "FAILED" })

	b.Kill()
	close(down)
	b.Restart()
	waitUntil(t, "the copy after the restart", 60*time.Second, func() bool {
		got, err := crane.Digest(dest.Host() + "/site-a/private/app:v1")
		return err == nil && got == d.String()
	})
	waitUntil(t, "COMPLETE", 10*time.Second, func() bool { return replicationStatus(t, b, "v1") == "COMPLETE" })
}
