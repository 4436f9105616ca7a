package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"berth/scan"
	"berth/scan/scantest"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
)

// An image's referrers travel in its bundle: the SBOMs Berth made for a
// local and a cached image on node A are listed by the referrers API of
// offline node B after the import, and their documents are served.
func TestExportCarriesReferrers(t *testing.T) {
	up := testreg.Start(t)
	up.Push(t, "lib/vuln", "v1", scantest.Vulnerable(t, scantest.GoBinary(t)))
	a := startNode(t, fmt.Sprintf("upstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	b := startNode(t, fmt.Sprintf("offline: true\nupstreams: [{name: hub, prefix: hub, url: %s}]\n", up.URL))
	if _, err := a.n.VulnDB().ImportPaths(t.Context(), scantest.WriteOSV(t, scantest.Records)); err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(scantest.Fixed(t), a.host()+"/private/app:v1"); err != nil {
		t.Fatal(err)
	}
	img, err := crane.Pull(a.host() + "/hub/lib/vuln:v1")
	if err != nil {
		t.Fatal(err)
	}
	// Every layer through A, so it holds the whole image.
	if err := crane.Save(img, "x", filepath.Join(t.TempDir(), "x.tar")); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]string{}
	for _, repo := range []string{"private/app", "hub/lib/vuln"} {
		d, err := crane.Digest(a.host() + "/" + repo + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		subjects[repo] = d
		if out, err := bundleCmd(t, a, "start-image-scan", "--repository-name", repo, "--image-id", "imageTag=v1"); err != nil {
			t.Fatalf("start-image-scan %s: %v\n%s", repo, err, out)
		}
	}
	if err := a.n.Scanner().WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for repo, d := range subjects {
		sboms := referrers(t, a, repo, d)
		if len(sboms) != 1 {
			t.Fatalf("node A lists %d referrers of %s@%s, want its SBOM", len(sboms), repo, d)
		}
		want[repo] = sboms[0]
	}

	file := filepath.Join(t.TempDir(), "b.tar")
	if out, err := bundleCmd(t, a, "export", "--output", file, "private/app:v1", "hub/lib/vuln:v1"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := bundleCmd(t, b, "import", file); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	up.Reset()
	for repo, d := range subjects {
		got := referrers(t, b, repo, d)
		if len(got) != 1 || got[0] != want[repo] {
			t.Errorf("node B lists referrers %v of %s@%s, want the SBOM %s", got, repo, d, want[repo])
		}
		sbom, err := crane.Pull(b.host() + "/" + repo + "@" + want[repo])
		if err != nil {
			t.Fatalf("the SBOM %s on node B: %v", want[repo], err)
		}
		if err := crane.Save(sbom, "x", filepath.Join(t.TempDir(), "sbom.tar")); err != nil {
			t.Errorf("the SBOM %s's document on node B: %v", want[repo], err)
		}
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("offline node B asked the upstream %d times: %v", n, up.Requests())
	}
}

// referrers is the digests of the SBOMs the referrers API of tn lists for
// repo@d.
func referrers(t *testing.T, tn *testNode, repo, d string) []string {
	t.Helper()
	resp, err := http.Get(tn.reg.URL + "/v2/" + repo + "/referrers/" + d)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx struct {
		Manifests []struct{ Digest, ArtifactType string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("referrers of %s@%s: %d %v", repo, d, resp.StatusCode, err)
	}
	var out []string
	for _, m := range idx.Manifests {
		if m.ArtifactType == scan.SBOMArtifactType {
			out = append(out, m.Digest)
		}
	}
	return out
}
