package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// berthCLI runs an admin verb of the berth binary against b and decodes
// its JSON output into out (when out is not nil).
func berthCLI(t *testing.T, b *Berth, out any, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append(args, "--admin", b.AdminURL)...)
	raw, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("berth %s: %v\n%s%s", strings.Join(args, " "), err, raw, stderr)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("berth %s printed no JSON: %v\n%s", args[0], err, raw)
		}
	}
	return string(raw)
}

// TestCLIAgainstRunningBerth drives the ECR-like verbs against a running
// node and checks their JSON.
func TestCLIAgainstRunningBerth(t *testing.T) {
	up := testreg.Start(t)
	up.Push(t, "library/alpine", "3.20", testreg.Image(t, 61, 2048))
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))

	var created struct {
		Repository struct{ RepositoryName, ImageTagMutability string }
	}
	berthCLI(t, b, &created, "create-repository", "--repository-name", "private/app", "--image-tag-mutability", "IMMUTABLE")
	if created.Repository.RepositoryName != "private/app" || created.Repository.ImageTagMutability != "IMMUTABLE" {
		t.Fatalf("create-repository: %+v", created)
	}
	img := testreg.Image(t, 62, 1000, 2000)
	if err := crane.Push(img, b.Addr+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if _, err := testreg.PullAll(b.Addr + "/alpine:3.20"); err != nil { // a cached image
		t.Fatal(err)
	}

	var images struct {
		ImageDetails []struct {
			ImageDigest      string
			ImageTags        []string
			ImageSizeInBytes int64
			RepositoryName   string
		}
	}
	berthCLI(t, b, &images, "describe-images", "--repository-name", "private/app")
	if len(images.ImageDetails) != 1 || images.ImageDetails[0].ImageDigest != d.String() ||
		len(images.ImageDetails[0].ImageTags) != 1 || images.ImageDetails[0].ImageTags[0] != "v1" || images.ImageDetails[0].ImageSizeInBytes < 3000 {
		t.Fatalf("describe-images private/app: %+v", images)
	}
	berthCLI(t, b, &images, "describe-images", "--repository-name", "hub/library/alpine")
	if len(images.ImageDetails) != 1 {
		t.Fatalf("describe-images of the cached repository: %+v", images)
	}

	var repos struct {
		Repositories []struct{ RepositoryName string }
	}
	berthCLI(t, b, &repos, "describe-repositories")
	if len(repos.Repositories) != 1 || repos.Repositories[0].RepositoryName != "private/app" {
		t.Fatalf("describe-repositories: %+v", repos)
	}
	if table := berthCLI(t, b, nil, "describe-repositories", "-o", "table"); !strings.Contains(table, "private/app") || strings.HasPrefix(strings.TrimSpace(table), "{") {
		t.Fatalf("-o table printed:\n%s", table)
	}

	var cacheInfo map[string]any
	berthCLI(t, b, &cacheInfo, "describe-cache")
	if len(cacheInfo) == 0 {
		t.Fatal("describe-cache printed nothing")
	}
	var rules map[string]any
	berthCLI(t, b, &rules, "describe-pull-through-cache-rules")
	if !strings.Contains(berthCLI(t, b, nil, "describe-pull-through-cache-rules"), up.URL) {
		t.Fatal("describe-pull-through-cache-rules does not show the configured upstream")
	}

	var deleted struct {
		ImageIds []struct{ ImageDigest, ImageTag string }
		Failures []any
	}
	berthCLI(t, b, &deleted, "batch-delete-image", "--repository-name", "private/app", "--image-ids", "imageTag=v1")
	if len(deleted.ImageIds) != 1 || len(deleted.Failures) != 0 {
		t.Fatalf("batch-delete-image: %+v", deleted)
	}
	var gc map[string]any
	berthCLI(t, b, &gc, "start-gc")
	resp, err := crane.Manifest(b.Addr + "/private/app:v1")
	if err == nil {
		t.Fatalf("deleted image still served: %s", resp)
	}
}
