package clients

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd is a private containerd daemon started by StartContainerd.
type Containerd struct {
	Address string // gRPC unix socket path (pass to ctr --address / dockerd --containerd)
	Dir     string // short base dir under /tmp holding everything below
	Root    string // containerd root (content store, snapshots, metadata)
	State   string // containerd state dir
	Config  string // generated config.toml
	LogPath string // daemon stdout/stderr

	d *daemon
}

// CtrSnapshotter is the snapshotter CtrPull unpacks with. "native" needs no
// mount support beyond bind mounts; set to "overlayfs" to test that instead.
var CtrSnapshotter = "native"

// CtrNamespace is the containerd namespace CtrPull uses.
var CtrNamespace = "default"

// Plugins disabled in the generated config: CRI (needs CNI, not wanted),
// snapshotters needing special filesystems/tools, /opt installer, tracing.
var containerdDisabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.internal.v1.opt",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
}

// StartContainerd starts a private containerd (own root, state, socket and
// config) inside the isolated netns, waits until `ctr version` answers, and
// stops it (killing its process group and unmounting leftovers) in t.Cleanup.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	RequireIsolatedNetns(t)
	bin := LookBin(t, "containerd")
	ctr := LookBin(t, "ctr")

	dir := shortTempDir(t, "ctd-")
	c := &Containerd{
		Dir:     dir,
		Address: filepath.Join(dir, "c.sock"),
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Config:  filepath.Join(dir, "config.toml"),
		LogPath: filepath.Join(dir, "containerd.log"),
	}
	var disabled []string
	for _, p := range containerdDisabledPlugins {
		disabled = append(disabled, fmt.Sprintf("%q", p))
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""
`, c.Root, c.State, strings.Join(disabled, ", "), c.Address, c.Address+".ttrpc")
	if err := os.WriteFile(c.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon("containerd", c.LogPath, nil, bin, "--config", c.Config)
	if err != nil {
		t.Fatal(err)
	}
	c.d = d
	// Registered after shortTempDir's cleanup, so it runs before it (LIFO).
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("containerd log:\n%s", tailFile(c.LogPath, 60))
		}
	})
	err = d.waitReady(DaemonStartTimeout, func(ctx context.Context) error {
		_, err := runCmd(ctx, nil, ctr, "--address", c.Address, "version")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Stop stops the daemon (idempotent; also done automatically in t.Cleanup).
func (c *Containerd) Stop() {
	if c.d != nil {
		c.d.stop(15 * time.Second)
	}
}

// Ctr runs `ctr --address SOCK --namespace CtrNamespace ARGS...` with the
// standard timeout and returns stdout.
func Ctr(t testing.TB, sock string, args ...string) (string, error) {
	t.Helper()
	return ctrNS(t, sock, CtrNamespace, args...)
}

func ctrNS(t testing.TB, sock, ns string, args ...string) (string, error) {
	t.Helper()
	ctr := LookBin(t, "ctr")
	return runCmd(context.Background(), nil, ctr,
		append([]string{"--address", sock, "--namespace", ns}, args...)...)
}

// CtrPullOptions tweaks CtrPullWith. Empty fields take the package defaults.
type CtrPullOptions struct {
	Namespace   string   // default CtrNamespace
	Snapshotter string   // default CtrSnapshotter
	ExtraArgs   []string // e.g. "--platform", "linux/arm64" or "--all-platforms"
}

// CtrPull runs `ctr images pull --hosts-dir DIR --snapshotter CtrSnapshotter
// REF` (REF must be fully qualified, e.g. docker.io/library/alpine:latest)
// and returns the digest of the top-level manifest/index the image record
// points at (from `ctr images ls`). The pull also unpacks the layers.
func CtrPull(t testing.TB, sock, hostsDir, ref string) (string, error) {
	t.Helper()
	return CtrPullWith(t, sock, hostsDir, ref, CtrPullOptions{})
}

// CtrPullWith is CtrPull with options.
func CtrPullWith(t testing.TB, sock, hostsDir, ref string, o CtrPullOptions) (string, error) {
	t.Helper()
	if o.Namespace == "" {
		o.Namespace = CtrNamespace
	}
	if o.Snapshotter == "" {
		o.Snapshotter = CtrSnapshotter
	}
	args := []string{"images", "pull", "--hosts-dir", hostsDir}
	if o.Snapshotter != "" {
		args = append(args, "--snapshotter", o.Snapshotter)
	}
	args = append(args, o.ExtraArgs...)
	args = append(args, ref)
	out, err := ctrNS(t, sock, o.Namespace, args...)
	t.Logf("ctr pull %s:\n%s", ref, lastProgress(out))
	if err != nil {
		return "", err
	}
	return ctrImageDigest(t, sock, o.Namespace, ref)
}

// lastProgress keeps only the final frame of ctr's progress output.
func lastProgress(out string) string {
	out = strings.TrimSpace(out)
	if i := strings.LastIndex(out, "elapsed:"); i >= 0 {
		if j := strings.LastIndex(out[:i], "resolved"); j >= 0 {
			if k := strings.LastIndex(out[:j], "\n"); k >= 0 {
				out = out[k+1:]
			}
		}
	}
	return trim(out)
}

// CtrImageDigest returns the target digest of image record ref in
// namespace CtrNamespace.
func CtrImageDigest(t testing.TB, sock, ref string) (string, error) {
	t.Helper()
	return ctrImageDigest(t, sock, CtrNamespace, ref)
}

func ctrImageDigest(t testing.TB, sock, ns, ref string) (string, error) {
	t.Helper()
	out, err := ctrNS(t, sock, ns, "images", "ls")
	if err != nil {
		return "", err
	}
	// REF  TYPE  DIGEST  SIZE  PLATFORMS  LABELS
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("image %s not in `ctr images ls`:\n%s", ref, out)
}

// HostsToml returns a containerd hosts.toml whose default server is a
// loopback port that refuses connections (so a fallback can never succeed)
// and whose only host is mirrorURL (e.g. "http://127.0.0.1:5000") with the
// pull and resolve capabilities. The scheme of mirrorURL selects plain HTTP
// or TLS.
func HostsToml(mirrorURL string) string {
	return fmt.Sprintf(`server = "http://127.0.0.1:1"

[host.%q]
  capabilities = ["pull", "resolve"]
`, strings.TrimRight(mirrorURL, "/"))
}

// WriteHostsToml writes hostsDir/<registry>/hosts.toml (see HostsToml).
// registry is the upstream host name as it appears in image refs
// ("docker.io", "ghcr.io", "registry.k8s.io", "localhost:5000", ...).
func WriteHostsToml(t testing.TB, hostsDir, registry, mirrorURL string) {
	t.Helper()
	if u, err := url.Parse(mirrorURL); err != nil || u.Host == "" {
		t.Fatalf("bad mirror URL %q", mirrorURL)
	}
	d := filepath.Join(hostsDir, registry)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(HostsToml(mirrorURL)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// DefaultRegistries are the upstream names WriteHostsDir configures when
// called without any.
var DefaultRegistries = []string{"docker.io", "ghcr.io", "quay.io", "gcr.io", "registry.k8s.io", "public.ecr.aws"}

// WriteHostsDir creates a fresh hosts dir (under t.TempDir) routing every
// given registry (DefaultRegistries if none) to mirrorURL, and returns it.
func WriteHostsDir(t testing.TB, mirrorURL string, registries ...string) string {
	t.Helper()
	if len(registries) == 0 {
		registries = DefaultRegistries
	}
	dir := filepath.Join(t.TempDir(), "certs.d")
	for _, r := range registries {
		WriteHostsToml(t, dir, r, mirrorURL)
	}
	return dir
}
