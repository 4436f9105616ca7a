package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/clients"
	"berth/test/testreg"
)

// podman runs podman with storage, configuration and runtime state of its
// own under dir: overlay storage with partial (zstd:chunked) pulls on.
type podman struct {
	t   *testing.T
	bin string
	env []string
	dir string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	bin := clients.LookBin(t, "podman")
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage.conf")
	writeFile(t, storage, fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = %q
runroot = %q
[storage.options]
pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}
`, filepath.Join(dir, "graph"), filepath.Join(dir, "run")))
	containers := filepath.Join(dir, "containers.conf")
	writeFile(t, containers, "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\n")
	writeFile(t, filepath.Join(dir, "auth.json"), `{"auths":{}}`)
	registries := filepath.Join(dir, "registries.conf")
	writeFile(t, registries, "unqualified-search-registries = []\n")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"),
		"CONTAINERS_STORAGE_CONF=" + storage, "CONTAINERS_CONF=" + containers,
		"CONTAINERS_REGISTRIES_CONF=" + registries, "REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json")}
	p := &podman{t: t, bin: bin, env: env, dir: dir}
	t.Cleanup(func() {
		// Images (and any overlay mount of theirs) go before the temp dir.
		_, _ = p.run(context.Background(), "rmi", "--all", "--force")
	})
	return p
}

func (p *podman) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = p.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// rootfsTar is a root file system of n files, each of a few chunks.
func rootfsTar(t *testing.T, n int) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range n {
		data := testreg.Bytes(64<<10+i*4096, uint64(900+i))
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/file-%02d.bin", i), Mode: 0o644,
			Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPodmanPartialPullThroughBerth: podman with partial images on pulls a
// zstd:chunked image through Berth's cache; it reads the layer by ranges
// (the table of contents, then the files' chunks, several ranges per
// request), and Berth answers them from one fill of the blob.
func TestPodmanPartialPullThroughBerth(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := testreg.Start(t)
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, false, ""))
	target, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	var log clients.RequestLog
	front := httptest.NewServer(log.Wrap(httputil.NewSingleHostReverseProxy(target)))
	defer front.Close()

	pusher := newPodman(t)
	if _, err := pusher.run(ctx, "import", rootfsTar(t, 12), "localhost/app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := pusher.run(ctx, "push", "--tls-verify=false", "--compression-format", "zstd:chunked",
		"localhost/app:v1", "docker://"+up.Host()+"/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	id, err := pusher.run(ctx, "image", "inspect", "--format", "{{.Id}}", "localhost/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	up.Reset()

	puller := newPodman(t)
	ref := strings.TrimPrefix(front.URL, "http://") + "/hub/team/app:v1"
	out, err := puller.run(ctx, "pull", "--tls-verify=false", ref)
	if err != nil {
		t.Fatalf("podman pull through berth: %v", err)
	}
	if got := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]); got != strings.TrimSpace(id) {
		t.Errorf("podman pulled image %q, want %q:\n%s", got, strings.TrimSpace(id), out)
	}
	multi := 0
	for _, r := range log.Requests() {
		rng := r.Header.Get("Range")
		if rng != "" {
			t.Logf("%s %s Range: %.120s -> %d", r.Method, r.Path, rng, r.Status)
		}
		if strings.Contains(rng, ",") {
			multi++
			if r.Status != http.StatusPartialContent {
				t.Errorf("multi-range GET answered %d, want 206", r.Status)
			}
		}
	}
	if multi == 0 {
		t.Errorf("podman sent no multi-range GET (a full pull, not a partial one)")
	}
	if n := up.Count("GET blobs"); n > 2 {
		t.Errorf("the upstream saw %d blob GETs for one layer and one config: %v", n, up.Requests())
	}
}
