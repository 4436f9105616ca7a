package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"berth/test/clients"
	"berth/test/testport"
	"berth/test/testreg"
)

// TestContainerImage builds the image (Dockerfile, through
// scripts/image-context as make image does) with the test's own dockerd,
// runs it with a named data volume on the host network of the test's
// namespace, pulls through the container with crane and with containerd,
// and then runs a second container on the same volume, which serves the
// image from the store without asking the upstream.
func TestContainerImage(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	up := testreg.Start(t)
	img := realImage(t, 15, 2, runtime.GOARCH, false)
	want := up.Push(t, "library/alpine", "latest", img).String()
	up.Reset()

	d := clients.StartDockerd(t, clients.DockerdOptions{})
	const tag = "berth-e2e:test"
	buildImage(t, d, tag)
	inspectImage(t, d, tag)

	port := testport.Free(t)
	cfgDir := t.TempDir()
	// The admin listener stays where the image's HEALTHCHECK asks.
	writeFile(t, filepath.Join(cfgDir, "config.yaml"), fmt.Sprintf("listen: \"127.0.0.1:%d\"\ndataDir: /var/lib/berth\n"+
		"admin:\n  listen: \"127.0.0.1:5001\"\nupstreams:\n%s", port, upstreamConfig("hub", "hub", "docker.io", up.URL, true, "")))
	if err := os.Chmod(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string) {
		t.Helper()
		out, err := clients.Docker(t, d.Socket, "run", "-d", "--name", name, "--network", "host",
			"--health-interval", "500ms", "--health-start-period", "0s",
			"-v", "berth-e2e-data:/var/lib/berth", "-v", cfgDir+":/etc/berth-test:ro",
			tag, "serve", "--config", "/etc/berth-test/config.yaml")
		if err != nil {
			t.Fatalf("docker run: %v\n%s", err, out)
		}
		t.Cleanup(func() { clients.Docker(t, d.Socket, "rm", "-f", name) })
		waitHealthy(t, d, name)
	}
	run("berth-1")
	ref := fmt.Sprintf("127.0.0.1:%d/hub/library/alpine:latest", port)
	if _, err := crane.Pull(ref); err != nil {
		t.Fatalf("crane pull %s through the container: %v", ref, err)
	}
	if got, err := crane.Digest(ref); err != nil || got != want {
		t.Fatalf("crane digest %s: %s, %v; want %s", ref, got, err, want)
	}
	ctrd := clients.StartContainerd(t)
	hosts := clients.WriteHostsDir(t, fmt.Sprintf("http://127.0.0.1:%d", port), "docker.io")
	if got, err := clients.CtrPull(t, ctrd.Address, hosts, "docker.io/library/alpine:latest"); err != nil || got != want {
		t.Fatalf("ctr pull through the container: %s, %v; want %s", got, err, want)
	}
	assertOneGETPerBlob(t, "hub", up, "library/alpine", blobDigests(t, img))

	// The store is on the volume: a new container serves what the first
	// one fetched.
	if out, err := clients.Docker(t, d.Socket, "rm", "-f", "berth-1"); err != nil {
		t.Fatalf("docker rm: %v\n%s", err, out)
	}
	up.Reset()
	up.Mutate(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "upstream down for this test", http.StatusServiceUnavailable)
		return true
	})
	run("berth-2")
	if _, err := crane.Pull(fmt.Sprintf("127.0.0.1:%d/hub/library/alpine@%s", port, want)); err != nil {
		t.Fatalf("pull from the second container on the same volume: %v", err)
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("the second container asked the upstream %d times; the volume should have served it: %v", n, up.Requests())
	}
}

// buildImage stages the context with scripts/image-context and builds it.
func buildImage(t *testing.T, d *clients.Dockerd, tag string) {
	t.Helper()
	ctxDir := filepath.Join(t.TempDir(), "image")
	cmd := exec.Command("scripts/image-context", ctxDir)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "LDFLAGS=-X main.version=e2e")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image-context: %v\n%s", err, out)
	}
	out, err := clients.Docker(t, d.Socket, "build", "-t", tag, "--build-arg", "VERSION=e2e", "--build-arg", "REVISION=abc123",
		"--build-arg", "SOURCE=https://example.invalid/berth", ctxDir)
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// inspectImage checks the image's user, volume, healthcheck and labels.
func inspectImage(t *testing.T, d *clients.Dockerd, tag string) {
	t.Helper()
	out, err := clients.Docker(t, d.Socket, "image", "inspect", "--format", "{{json .Config}}", tag)
	if err != nil {
		t.Fatalf("docker image inspect: %v\n%s", err, out)
	}
	var c struct {
		User        string
		Volumes     map[string]struct{}
		Entrypoint  []string
		Healthcheck struct{ Test []string }
		Labels      map[string]string
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &c); err != nil {
		t.Fatalf("image config: %v\n%s", err, out)
	}
	if c.User == "" || c.User == "root" || strings.HasPrefix(c.User, "0") {
		t.Errorf("image user %q, want a non-root user", c.User)
	}
	if _, ok := c.Volumes["/var/lib/berth"]; !ok {
		t.Errorf("image volumes %v, want /var/lib/berth", c.Volumes)
	}
	if !strings.Contains(strings.Join(c.Healthcheck.Test, " "), "healthcheck") {
		t.Errorf("image healthcheck %v, want berth healthcheck", c.Healthcheck.Test)
	}
	for k, v := range map[string]string{"org.opencontainers.image.version": "e2e", "org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.source": "https://example.invalid/berth"} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
}

// waitHealthy waits until docker reports the container healthy: the
// image's HEALTHCHECK (berth healthcheck) passed.
func waitHealthy(t *testing.T, d *clients.Dockerd, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	for time.Now().Before(deadline) {
		out, err := clients.Docker(t, d.Socket, "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", name)
		last = strings.TrimSpace(out)
		if err == nil && last == "running healthy" {
			return
		}
		if err == nil && strings.HasPrefix(last, "exited") {
			break
		}
		<-tick.C
	}
	logs, _ := clients.Docker(t, d.Socket, "logs", "--tail", "40", name)
	t.Fatalf("container %s not healthy within 60s (state %q):\n%s", name, last, logs)
}
