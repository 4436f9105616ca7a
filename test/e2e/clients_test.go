package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth/test/clients"
	"berth/test/testreg"
)

// realImage builds an image that real clients can unpack: nLayers gzipped
// tar layers (deterministic content from seed) and a config naming
// linux/arch. oci selects OCI media types instead of Docker schema 2.
func realImage(t testing.TB, seed uint64, nLayers int, arch string, oci bool) v1.Image {
	t.Helper()
	layerType := types.DockerLayer
	img := empty.Image
	if oci {
		layerType = types.OCILayer
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for i := 0; i < nLayers; i++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		data := testreg.Bytes(512+64*i, seed*1000+uint64(i))
		name := fmt.Sprintf("berth-%d-%d.bin", seed, i)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)),
			Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
		tw.Close()
		raw := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(raw)), nil
		}, tarball.WithMediaType(layerType))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Cmd = []string{"/nonexistent"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// blobDigests returns the config and layer digests of img.
func blobDigests(t testing.TB, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// assertOneGETPerBlob checks that reg saw exactly one GET for each digest in
// want (under repo) and no other blob GET.
func assertOneGETPerBlob(t testing.TB, name string, reg *testreg.Registry, repo string, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range reg.Requests() {
		method, uri, _ := strings.Cut(r, " ")
		if method != http.MethodGet || testreg.Kind(uri) != "blobs" {
			continue
		}
		path, _, _ := strings.Cut(uri, "?")
		if !strings.HasPrefix(path, "/v2/"+repo+"/blobs/") {
			t.Errorf("%s: blob GET for an unexpected repository: %s", name, uri)
		}
		seen[path[strings.LastIndex(path, "/")+1:]]++
	}
	for _, d := range want {
		if seen[d] != 1 {
			t.Errorf("%s: blob %s fetched %d times upstream, want 1", name, d, seen[d])
		}
		delete(seen, d)
	}
	for d, n := range seen {
		t.Errorf("%s: unexpected blob %s fetched %d times upstream", name, d, n)
	}
	if got := reg.Count("GET blobs"); got != len(want) {
		t.Errorf("%s: GET blobs = %d, want %d (requests: %v)", name, got, len(want), reg.Requests())
	}
}

func imageDigest(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

const allManifestTypes = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// TestContainerdPullsThroughBerthByNS: containerd with hosts.toml mirrors
// for docker.io and quay.io pulls through one Berth, which routes by ?ns=.
func TestContainerdPullsThroughBerthByNS(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	hubReg, quayReg := testreg.Start(t), testreg.Start(t)
	alpine := realImage(t, 1, 2, runtime.GOARCH, false)
	tool := realImage(t, 2, 1, runtime.GOARCH, true)
	alpineDigest := hubReg.Push(t, "library/alpine", "latest", alpine).String()
	toolDigest := quayReg.Push(t, "org/tool", "v1", tool).String()
	hubReg.Reset()
	quayReg.Reset()

	b := StartBerth(t, "", "upstreams:\n"+
		upstreamConfig("hub", "hub", "docker.io", hubReg.URL, false, "")+
		upstreamConfig("quay", "quay", "quay.io", quayReg.URL, false, ""))
	hosts := clients.WriteHostsDir(t, b.URL, "docker.io", "quay.io", "ghcr.io")

	const alpineRef, toolRef = "docker.io/library/alpine:latest", "quay.io/org/tool:v1"
	pullBoth := func(sock string) {
		t.Helper()
		for _, p := range []struct{ ref, want string }{{alpineRef, alpineDigest}, {toolRef, toolDigest}} {
			got, err := clients.CtrPull(t, sock, hosts, p.ref)
			if err != nil {
				t.Fatalf("ctr pull %s: %v", p.ref, err)
			}
			if got != p.want {
				t.Errorf("ctr pull %s: digest %s, want %s", p.ref, got, p.want)
			}
		}
	}

	// Cold: through to the upstreams.
	c1 := clients.StartContainerd(t)
	pullBoth(c1.Address)
	for _, u := range []struct {
		name string
		reg  *testreg.Registry
		repo string
		img  v1.Image
	}{{"hub", hubReg, "library/alpine", alpine}, {"quay", quayReg, "org/tool", tool}} {
		if n := u.reg.Count("GET manifests"); n < 1 {
			t.Errorf("%s: upstream saw no manifest GET: %v", u.name, u.reg.Requests())
		}
		assertOneGETPerBlob(t, u.name, u.reg, u.repo, blobDigests(t, u.img))
	}
	c1.Stop()

	// The upstreams saw unprefixed names (/v2/library/alpine, /v2/org/tool)
	// and there is no default rule, so containerd's requests were routed by
	// their ?ns=: without it the same name has no route.
	resp, err := b.Do(ctx, http.MethodGet, "/v2/org/tool/manifests/v1", http.Header{"Accept": {allManifestTypes}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v2/org/tool/manifests/v1 without ns: status %d, want 404", resp.StatusCode)
	}
	// A raw request carrying ns is routed by it and echoed in OCI-Namespace.
	resp, err = b.Do(ctx, http.MethodGet, "/v2/org/tool/manifests/v1?ns=quay.io", http.Header{"Accept": {allManifestTypes}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("OCI-Namespace") != "quay.io" ||
		resp.Header.Get("Docker-Content-Digest") != toolDigest {
		t.Errorf("GET ?ns=quay.io: status %d, OCI-Namespace %q, digest %q; want 200, quay.io, %s",
			resp.StatusCode, resp.Header.Get("OCI-Namespace"), resp.Header.Get("Docker-Content-Digest"), toolDigest)
	}

	// Warm: a fresh containerd (empty content store) is served from Berth only.
	hubReg.Reset()
	quayReg.Reset()
	c2 := clients.StartContainerd(t)
	pullBoth(c2.Address)
	if n, m := hubReg.Count("total"), quayReg.Count("total"); n != 0 || m != 0 {
		t.Errorf("warm pull reached the upstreams: hub %v, quay %v", hubReg.Requests(), quayReg.Requests())
	}

	// An ns no rule mirrors: Berth answers 404, containerd falls back to the
	// refusing server, the pull fails fast and no upstream is asked.
	resp, err = b.Do(ctx, http.MethodGet, "/v2/org/tool/manifests/v1?ns=ghcr.io", http.Header{"Accept": {allManifestTypes}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET ?ns=ghcr.io: status %d, want 404", resp.StatusCode)
	}
	start := time.Now()
	if _, err := clients.CtrPull(t, c2.Address, hosts, "ghcr.io/org/tool:v1"); err == nil {
		t.Error("ctr pull ghcr.io/org/tool:v1 succeeded, want failure (ghcr.io is not mirrored)")
	} else {
		d := time.Since(start)
		t.Logf("ctr pull ghcr.io/org/tool:v1 failed after %v as expected: %v", d.Round(time.Millisecond), lastLines(err.Error(), 3))
		if d > 20*time.Second {
			t.Errorf("ctr pull of an unmirrored registry took %v, want a fast failure", d)
		}
	}
	if n, m := hubReg.Count("total"), quayReg.Count("total"); n != 0 || m != 0 {
		t.Errorf("unmirrored ns reached the upstreams: hub %v, quay %v", hubReg.Requests(), quayReg.Requests())
	}
}

// TestDockerPullsThroughBerthMirror: dockerd with registry-mirrors = Berth
// pulls an unprefixed Docker Hub name through the default rule.
func TestDockerPullsThroughBerthMirror(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	up := testreg.Start(t)
	img := realImage(t, 3, 2, runtime.GOARCH, false)
	want := up.Push(t, "library/alpine", "latest", img).String()
	up.Reset()

	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "", "docker.io", up.URL, true, ""))

	d1 := clients.StartDockerd(t, clients.DockerdOptions{Mirrors: []string{b.URL}})
	got, err := clients.DockerPull(t, d1.Socket, "alpine:latest")
	if err != nil {
		t.Fatalf("docker pull: %v", err)
	}
	if got != want {
		t.Errorf("docker pull: repo digest %s, want %s", got, want)
	}
	if n := up.Count("GET manifests"); n < 1 {
		t.Errorf("upstream saw no manifest GET: %v", up.Requests())
	}
	assertOneGETPerBlob(t, "hub", up, "library/alpine", blobDigests(t, img))
	d1.Stop()
	d1.Containerd.Stop()

	up.Reset()
	d2 := clients.StartDockerd(t, clients.DockerdOptions{Mirrors: []string{b.URL}})
	got, err = clients.DockerPull(t, d2.Socket, "alpine:latest")
	if err != nil {
		t.Fatalf("second docker pull: %v", err)
	}
	if got != want {
		t.Errorf("second docker pull: repo digest %s, want %s", got, want)
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("warm docker pull reached the upstream: %v", up.Requests())
	}
}
