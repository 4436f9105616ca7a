package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth/test/clients"
	"berth/test/testreg"
)

// runSkopeo runs skopeo with a bounded context, an accept-anything policy
// and a private HOME (no auth files of the machine), returning stdout; a
// failure's error holds what skopeo printed on stderr.
func runSkopeo(ctx context.Context, t *testing.T, policy string, args ...string) (string, error) {
	t.Helper()
	bin := clients.LookBin(t, "skopeo")
	cmd := exec.CommandContext(ctx, bin, append([]string{"--policy", policy}, args...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+home, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Logf("skopeo %v:\n%s%s", args, stdout.String(), stderr.String())
		err = fmt.Errorf("skopeo %s: %w: %s", args[0], err, stderr.String())
	}
	return stdout.String(), err
}

// ociLayoutDigest returns the manifest digest index.json of an oci: dir
// records (its only entry).
func ociLayoutDigest(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s/index.json has %d manifests, want 1: %s", dir, len(idx.Manifests), b)
	}
	return idx.Manifests[0].Digest
}

// TestSkopeoCopyThroughBerth copies a 20-layer image and a multi-arch index
// through a prefix rule with skopeo, cold and then warm.
func TestSkopeoCopyThroughBerth(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}

	up := testreg.Start(t)
	// OCI media types: the oci: destination would convert a Docker schema 2
	// manifest to OCI, changing its digest.
	app := realImage(t, 10, 20, "amd64", true)
	appDigest := up.Push(t, "team/app", "v1", app).String()
	amd := realImage(t, 11, 2, "amd64", true)
	arm := realImage(t, 12, 3, "arm64", true)
	// The index is written by hand: ggcr's AppendManifests adds descriptor
	// artifactType fields, which skopeo 1.9 drops when it writes the index,
	// changing its digest.
	idxDigest := pushIndex(t, up, "team/multi", "v1", []v1.Image{amd, arm}, []string{"amd64", "arm64"})
	up.Reset()

	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "registry.example", up.URL, false, ""))

	copyTo := func(src string, all bool) string {
		t.Helper()
		dst := filepath.Join(t.TempDir(), "layout")
		args := []string{"copy", "--src-tls-verify=false"}
		if all {
			args = append(args, "--all")
		}
		args = append(args, "docker://"+b.Addr+src, "oci:"+dst+":v1")
		if _, err := runSkopeo(ctx, t, policy, args...); err != nil {
			t.Fatalf("skopeo copy %s: %v", src, err)
		}
		return ociLayoutDigest(t, dst)
	}

	// 20 layers, cold: one upstream GET per blob.
	if got := copyTo("/up/team/app:v1", false); got != appDigest {
		t.Errorf("copied app digest %s, want %s", got, appDigest)
	}
	assertOneGETPerBlob(t, "app", up, "team/app", blobDigests(t, app))

	// Multi-arch index with --all, cold.
	up.Reset()
	if got := copyTo("/up/team/multi:v1", true); got != idxDigest {
		t.Errorf("copied index digest %s, want %s", got, idxDigest)
	}
	assertOneGETPerBlob(t, "multi", up, "team/multi", append(blobDigests(t, amd), blobDigests(t, arm)...))

	// Warm: the same copies touch no upstream.
	up.Reset()
	if got := copyTo("/up/team/app:v1", false); got != appDigest {
		t.Errorf("warm copied app digest %s, want %s", got, appDigest)
	}
	if got := copyTo("/up/team/multi:v1", true); got != idxDigest {
		t.Errorf("warm copied index digest %s, want %s", got, idxDigest)
	}

	out, err := runSkopeo(ctx, t, policy, "inspect", "--no-tags", "--tls-verify=false", "docker://"+b.Addr+"/up/team/app:v1")
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var info struct {
		Digest string
		Layers []string
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	if info.Digest != appDigest || len(info.Layers) != 20 {
		t.Errorf("skopeo inspect: Digest %s with %d layers, want %s with 20", info.Digest, len(info.Layers), appDigest)
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("warm copies/inspect reached the upstream: %v", up.Requests())
	}
}

// pushIndex pushes imgs by digest and an OCI index over them (one
// linux/<arch> entry each) as repo:tag; it returns the index digest.
func pushIndex(t *testing.T, up *testreg.Registry, repo, tag string, imgs []v1.Image, archs []string) string {
	t.Helper()
	type desc struct {
		MediaType string       `json:"mediaType"`
		Digest    string       `json:"digest"`
		Size      int64        `json:"size"`
		Platform  *v1.Platform `json:"platform,omitempty"`
	}
	index := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []desc `json:"manifests"`
	}{SchemaVersion: 2, MediaType: string(types.OCIImageIndex)}
	for i, img := range imgs {
		d := imageDigest(t, img)
		ref, err := name.ParseReference(up.Host()+"/"+repo+"@"+d, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		size, err := img.Size()
		if err != nil {
			t.Fatal(err)
		}
		index.Manifests = append(index.Manifests, desc{string(types.OCIManifestSchema1), d, size,
			&v1.Platform{OS: "linux", Architecture: archs[i]}})
	}
	body, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, up.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", string(types.OCIImageIndex))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push index: %s", resp.Status)
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}
