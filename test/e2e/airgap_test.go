package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth/bundle"
	"berth/test/clients"
	"berth/test/testreg"
)

// berthRun runs a berth command with --admin b first and returns its
// output, stdout and stderr together.
func berthRun(t *testing.T, b *Berth, cmd string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := []string{cmd}
	if b != nil {
		full = append(full, "--admin", b.AdminURL)
	}
	out, err := exec.CommandContext(ctx, binary(t), append(full, args...)...).CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, b *Berth, cmd string, args ...string) string {
	t.Helper()
	out, err := berthRun(t, b, cmd, args...)
	if err != nil {
		t.Fatalf("berth %s %s: %v\n%s", cmd, strings.Join(args, " "), err, out)
	}
	return out
}

// TestAirGap: node A, with an upstream, syncs a multi-arch image ahead of
// any client (leaving a tag the rule does not select alone), and exports
// it with a local image in a signed bundle. Node B, offline, refuses a
// wrong key and a tampered copy, imports the bundle, and serves ctr (via
// hosts.toml) and dockerd (via registry-mirrors) with no upstream request.
// skopeo reads the bundle, and a delta carries only the new blobs.
func TestAirGap(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	up := testreg.Start(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	imgs := []v1.Image{realImage(t, 71, 2, runtime.GOARCH, true), realImage(t, 72, 2, other, true)}
	indexDigest := pushIndex(t, up, "library/multi", "1", imgs, []string{runtime.GOARCH, other})
	up.Push(t, "library/multi", "2", realImage(t, 73, 1, runtime.GOARCH, false))
	hub := func(extra string) string {
		return "upstreams:\n" + upstreamConfig("hub", "hub", "docker.io", up.URL, true, extra)
	}
	up.Reset()
	a := StartBerth(t, "", hub("")+"sync: [{name: pre, upstream: hub, repositories: [library/multi], tags: {regex: '1'}}]\n")
	b := StartBerth(t, "", "offline: true\n"+hub(""))

	// Sync ahead of clients (the first run starts with the node; sync-now
	// joins it or runs again): tag 1 with both platforms, not tag 2.
	out := mustRun(t, a, "sync-now", "--rule", "pre", "--wait", "-o", "table")
	t.Logf("sync-now:\n%s", out)
	if want := len(blobDigests(t, imgs[0])) + len(blobDigests(t, imgs[1])); up.Count("GET blobs") != want {
		t.Errorf("the sync fetched %d blobs, want the %d of tag 1's two platforms: %v", up.Count("GET blobs"), want, up.Requests())
	}
	if out := mustRun(t, a, "list-images", "--repository-name", "hub/library/multi"); strings.Contains(out, `"2"`) || !strings.Contains(out, `"1"`) {
		t.Errorf("after the sync, hub/library/multi holds:\n%s", out)
	}
	local := realImage(t, 74, 2, runtime.GOARCH, false)
	if err := crane.Push(local, a.Addr+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	key, wrong := filepath.Join(dir, "site"), filepath.Join(dir, "wrong")
	mustRun(t, nil, "keygen", "--output", key)
	mustRun(t, nil, "keygen", "--output", wrong)
	full := filepath.Join(dir, "full.tar")
	mustRun(t, a, "export", "--output", full, "--sign", key+".key", "--all-platforms", "hub/library/multi:1", "private/app:v1")

	if out, err := berthRun(t, b, "import", "--verify-key", wrong+".pub", full); err == nil || !strings.Contains(out, "signed by key") {
		t.Fatalf("import with the wrong key: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "tampered.tar")
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2048] ^= 0xff // inside the last blob
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := berthRun(t, b, "import", bad); err == nil || !strings.Contains(out, "refused") {
		t.Fatalf("import of a tampered bundle: %v\n%s", err, out)
	}
	mustRun(t, b, "import", "--verify-key", key+".pub", full)

	// B serves ctr and dockerd from the bundle alone.
	up.Reset()
	hosts := clients.WriteHostsDir(t, b.URL, "docker.io")
	c := clients.StartContainerd(t)
	if got, err := clients.CtrPull(t, c.Address, hosts, "docker.io/library/multi:1"); err != nil || got != indexDigest {
		t.Fatalf("ctr pull from B: %v, digest %s want %s", err, got, indexDigest)
	}
	c.Stop()
	d := clients.StartDockerd(t, clients.DockerdOptions{Mirrors: []string{b.URL}})
	if got, err := clients.DockerPull(t, d.Socket, "multi:1"); err != nil || got != indexDigest {
		t.Fatalf("docker pull multi:1 from B: %v, digest %s want %s", err, got, indexDigest)
	}
	if _, err := clients.DockerPull(t, d.Socket, b.Addr+"/private/app:v1"); err != nil {
		t.Fatalf("docker pull of the local image from B: %v", err)
	}
	d.Stop()
	d.Containerd.Stop()
	if n := up.Count("total"); n != 0 {
		t.Fatalf("B sent the upstream %d requests: %v", n, up.Requests())
	}

	// skopeo reads the bundle as an oci-archive (it lists entries of the
	// OCI media types).
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dst := filepath.Join(t.TempDir(), "copy")
	if _, err := runSkopeo(ctx, t, policy, "copy", "oci-archive:"+full+":hub/library/multi:1", "oci:"+dst); err != nil {
		t.Fatalf("skopeo copy oci-archive: %v", err)
	}
	if got, want := ociLayoutDigest(t, dst), imageDigest(t, imgs[0]); got != want {
		t.Errorf("skopeo copied %s, want %s", got, want)
	}

	// A delta carries only new blobs.
	newer := realImage(t, 75, 1, runtime.GOARCH, false)
	if err := crane.Push(newer, a.Addr+"/private/app:v2"); err != nil {
		t.Fatal(err)
	}
	delta := filepath.Join(dir, "delta.tar")
	mustRun(t, a, "export", "--output", delta, "--since", full, "private/app:v1", "private/app:v2")
	old, err := bundle.FileBlobs(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundle.FileBlobs(delta)
	if err != nil {
		t.Fatal(err)
	}
	for _, bd := range blobDigests(t, local) {
		if got[bd] {
			t.Errorf("the delta carries %s, which the full bundle carried", bd)
		}
	}
	for _, bd := range blobDigests(t, newer) {
		if !got[bd] || old[bd] {
			t.Errorf("blob %s of the new image: in delta %v, in full %v", bd, got[bd], old[bd])
		}
	}
	mustRun(t, b, "import", delta)
	if _, err := crane.Digest(b.Addr + "/private/app:v2"); err != nil {
		t.Fatalf("B after the delta: %v", err)
	}

}
