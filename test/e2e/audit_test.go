package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// TestAuditLog runs a scripted session against a local repository and
// checks that every action appears once in the audit log with its fields.
func TestAuditLog(t *testing.T) {
	up := testreg.Start(t)
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	img := testreg.Image(t, 31, 1234)
	if err := crane.Push(img, b.Addr+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if _, err := crane.Pull(b.Addr + "/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Do(context.Background(), http.MethodDelete, "/v2/private/app/manifests/"+d.String(), nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, _ = b.Do(context.Background(), http.MethodGet, "/v2/private/app/manifests/v1", nil)
	resp.Body.Close()
	b.Stop() // flushes the log

	f, err := os.Open(filepath.Join(b.DataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type event struct {
		Time, Principal, SourceIP, Action, Repository, Reference, Digest, Result string
		Status                                                                   int
		Bytes                                                                    int64
	}
	count := map[string]int{}
	var deleted, missing *event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if e.Time == "" || e.SourceIP != "127.0.0.1" || e.Principal != "anonymous" || e.Repository != "private/app" {
			t.Fatalf("incomplete event %+v", e)
		}
		count[e.Action]++
		switch {
		case e.Action == "BatchDeleteImage":
			deleted = &e
		case e.Action == "BatchGetImage" && e.Status == 404:
			missing = &e
		}
	}
	if count["PutImage"] != 1 || count["BatchDeleteImage"] != 1 || count["CompleteLayerUpload"] < 1 || count["InitiateLayerUpload"] < 1 {
		t.Fatalf("actions %v", count)
	}
	if deleted == nil || deleted.Digest != d.String() || deleted.Result != "success" || deleted.Status != 202 {
		t.Fatalf("delete event %+v", deleted)
	}
	if missing == nil || missing.Result != "MANIFEST_UNKNOWN" || missing.Reference != "v1" {
		t.Fatalf("failed pull event %+v", missing)
	}
}
