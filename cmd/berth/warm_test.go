package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/admin"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const warmManifests = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: ghcr.io/org/init:v1
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: report
            image: ghcr.io/org/init:v1
          - name: other
            image: quay.io/team/tool:2
`

// berth warm --from Kubernetes manifests fills every image of a Deployment
// and a CronJob (init containers too) through the node, the named platform
// only, routed by registry host; an image no rule covers is reported.
// Pulls through the node then reach no upstream, and --pin pins.
func TestWarmFromKubernetesManifests(t *testing.T) {
	up := testreg.Start(t)
	amd, arm := testreg.Image(t, 1, 3000), testreg.Image(t, 2, 4000)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	ref, err := name.ParseReference(up.Host() + "/library/nginx:1.27")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	up.Push(t, "org/init", "v1", testreg.Image(t, 3, 5000))
	tn := startNode(t, fmt.Sprintf(`upstreams:
- {name: hub, prefix: hub, registry: docker.io, url: %s, ttl: 1h}
- {name: ghcr, prefix: ghcr, registry: ghcr.io, url: %s, ttl: 1h}
`, up.URL, up.URL))
	file := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(file, []byte(warmManifests), 0o600); err != nil {
		t.Fatal(err)
	}
	up.Reset()
	out, err := bundleCmd(t, tn, "warm", "--from", file, "--platform", "linux/amd64", "--pin", "-o", "json")
	if err == nil || !strings.Contains(err.Error(), "1 of 3 images failed") {
		t.Fatalf("warm: %v\n%s", err, out)
	}
	var r admin.WarmResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err, out)
	}
	if r.Warmed != 2 || r.Failed != 1 || !strings.Contains(r.Images[2].Error, "no upstream rule covers quay.io/team/tool:2") {
		t.Fatalf("warm answered %+v", r)
	}
	for _, i := range r.Images[:2] {
		if i.Error != "" || !i.Pinned || i.Bytes == 0 {
			t.Fatalf("image %+v: want warmed and pinned", i)
		}
	}
	armLayers, _ := arm.Layers()
	armLayer, _ := armLayers[0].Digest()
	for _, req := range up.Requests() {
		if strings.Contains(req, armLayer.String()) {
			t.Fatalf("warm --platform linux/amd64 fetched the arm64 layer: %s", req)
		}
	}
	if up.Count("GET blobs") < 4 {
		t.Fatalf("the upstream saw %v; want the configs and layers filled", up.Requests())
	}

	up.Reset()
	for _, ref := range []string{"hub/library/nginx:1.27", "ghcr/org/init:v1"} {
		img, err := crane.Pull(tn.host()+"/"+ref, crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: "amd64"}))
		if err != nil {
			t.Fatal(err)
		}
		if err := crane.Save(img, "x", filepath.Join(t.TempDir(), "x.tar")); err != nil {
			t.Fatal(err)
		}
	}
	if n := up.Count("total"); n != 0 {
		t.Fatalf("pulls after warm reached the upstream: %v", up.Requests())
	}

	desc, err := bundleCmd(t, tn, "describe-images", "--repository-name", "hub/library/nginx")
	if err != nil || !strings.Contains(desc, `"pinned": true`) {
		t.Fatalf("describe-images after warm --pin: %v\n%s", err, desc)
	}
}

// A list names images as clients pull them through Berth, with comments;
// a local repository's name is reported, not filled.
func TestWarmFromList(t *testing.T) {
	up := testreg.Start(t)
	up.Push(t, "lib/app", "v1", testreg.Image(t, 1, 3000))
	tn := startNode(t, fmt.Sprintf("upstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	file := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(file, []byte("# what the cluster runs\nhub/lib/app:v1 # the app\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := bundleCmd(t, tn, "warm", "--from", file)
	if err != nil || !strings.Contains(out, "1 warmed, 0 failed") || !strings.Contains(out, "[1/1] hub/lib/app:v1: done, ") {
		t.Fatalf("warm (with a progress line per image): %v\n%s", err, out)
	}
	if up.Count("GET blobs") == 0 {
		t.Fatalf("the upstream saw %v", up.Requests())
	}
	if err := os.WriteFile(file, []byte("private/app:v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := bundleCmd(t, tn, "warm", "--from", file); err == nil || !strings.Contains(out, "local repository") {
		t.Fatalf("warm of a local name: %v\n%s", err, out)
	}
}

func TestKubernetesImages(t *testing.T) {
	got, err := kubernetesImages([]byte(warmManifests + "---\napiVersion: v1\nkind: Pod\nspec:\n  ephemeralContainers: [{name: dbg, image: busybox}]\n"))
	want := []string{"nginx:1.27", "ghcr.io/org/init:v1", "quay.io/team/tool:2", "busybox"}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("images %v %v, want %v", got, err, want)
	}
	if !isKubernetes([]byte(warmManifests)) || isKubernetes([]byte("hub/library/alpine:3.20\n")) {
		t.Fatal("detection")
	}
	if _, err := kubernetesImages([]byte("kind: Pod\nspec: [\n")); err == nil || !strings.Contains(err.Error(), "YAML document 1") {
		t.Fatalf("bad YAML: %v", err)
	}
}
