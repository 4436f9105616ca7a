package clients

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestHarnessAgainstPlainRegistry proves the harness itself: real ctr and
// real dockerd pull from go-containerregistry's in-memory registry (standing
// in for Berth) inside the isolated netns.
func TestHarnessAgainstPlainRegistry(t *testing.T) {
	RequireIsolatedNetns(t)

	var reqs RequestLog
	srv := httptest.NewServer(reqs.Wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("registry not on loopback: %s", srv.URL)
	}
	img := PushRandomImage(t, srv.URL, "library/alpine", "latest")
	t.Logf("pushed library/alpine:latest = %s to %s", img.Manifest.Digest, srv.URL)
	reqs.Reset()

	t.Run("containerd", func(t *testing.T) {
		hosts := WriteHostsDir(t, srv.URL, "docker.io")
		ctrd := StartContainerd(t)
		reqs.Reset()
		got, err := CtrPull(t, ctrd.Address, hosts, "docker.io/library/alpine:latest")
		if err != nil {
			t.Fatal(err)
		}
		if got != img.Manifest.Digest {
			t.Errorf("ctr digest = %s, want %s", got, img.Manifest.Digest)
		}
		var n int
		for _, r := range reqs.Requests() {
			t.Logf("containerd -> %s %s?%s (%d) UA=%q", r.Method, r.Path, r.RawQuery, r.Status, r.UserAgent)
			if !strings.HasPrefix(r.Path, "/v2/library/alpine/") {
				continue
			}
			n++
			if ns := r.Query("ns"); ns != "docker.io" {
				t.Errorf("%s %s?%s: ns=%q, want docker.io", r.Method, r.Path, r.RawQuery, ns)
			}
		}
		if n == 0 {
			t.Errorf("registry saw no /v2/library/alpine/ requests from containerd")
		}

		// A missing image must fail, and fast: the mirror says 404 and the
		// fallback server (127.0.0.1:1) refuses the connection.
		start := time.Now()
		if _, err := CtrPull(t, ctrd.Address, hosts, "docker.io/library/doesnotexist:latest"); err == nil {
			t.Errorf("pulling a missing image succeeded")
		} else {
			t.Logf("expected error: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("failed pull took %v", d)
		}
	})

	t.Run("dockerd", func(t *testing.T) {
		dk := StartDockerd(t, DockerdOptions{Mirrors: []string{srv.URL}})
		reqs.Reset()
		got, err := DockerPull(t, dk.Socket, "alpine:latest")
		if err != nil {
			t.Fatal(err)
		}
		if got != img.Manifest.Digest {
			t.Errorf("docker digest = %s, want %s", got, img.Manifest.Digest)
		}
		var n int
		for _, r := range reqs.Requests() {
			t.Logf("dockerd -> %s %s?%s (%d) UA=%q", r.Method, r.Path, r.RawQuery, r.Status, r.UserAgent)
			if strings.HasPrefix(r.Path, "/v2/library/alpine/") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("registry saw no /v2/library/alpine/ requests from dockerd")
		}

		// A missing image must fail fast: after the mirror's 404 dockerd
		// falls back to Docker Hub, which is unreachable inside the netns.
		start := time.Now()
		if _, err := DockerPull(t, dk.Socket, "doesnotexist:latest"); err == nil {
			t.Errorf("pulling a missing image succeeded")
		} else {
			t.Logf("expected error: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("failed pull took %v", d)
		}
	})
}
