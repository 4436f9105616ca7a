package node

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"berth/admin"
	"berth/scan"
	"berth/scan/scantest"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func (e *reloadEnv) adminPost(verb, body string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.admin.URL+admin.Prefix+verb, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return e.do(req, out)
}

func (e *reloadEnv) pushImage(repoTag string, img v1.Image) string {
	e.t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(e.reg.URL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		e.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, _ := img.Digest()
	return d.String()
}

// pullImage pulls an image whole (manifest, config, layers) as a client.
func (e *reloadEnv) pullImage(repoTag string) string {
	e.t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(e.reg.URL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		e.t.Fatalf("pull %s: %v", repoTag, err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			e.t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
	}
	d, _ := img.Digest()
	return d.String()
}

func (e *reloadEnv) findings(repo, digest string) admin.DescribeImageScanFindingsResponse {
	e.t.Helper()
	if err := e.n.Scanner().WaitIdle(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	var out admin.DescribeImageScanFindingsResponse
	if st := e.adminPost("describe-image-scan-findings", `{"repositoryName":"`+repo+`","imageId":{"imageDigest":"`+digest+`"}}`, &out); st != http.StatusOK {
		e.t.Fatalf("describe-image-scan-findings %s@%s: %d", repo, digest, st)
	}
	return out
}

func findingNames(r admin.DescribeImageScanFindingsResponse) []string {
	var out []string
	if r.ImageScanFindings != nil {
		for _, f := range r.ImageScanFindings.Findings {
			out = append(out, f.Name)
		}
	}
	slices.Sort(out)
	return out
}

// sbomReferrer checks that the referrers API of repo lists the image's
// SBOM, and that its document is served and names a package.
func (e *reloadEnv) sbomReferrer(repo, digest, pkg string) {
	e.t.Helper()
	resp, err := http.Get(e.reg.URL + "/v2/" + repo + "/referrers/" + digest)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx struct {
		Manifests []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"manifests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("referrers of %s@%s: %d %v", repo, digest, resp.StatusCode, err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].ArtifactType != scan.SBOMArtifactType {
		e.t.Fatalf("referrers of %s@%s: %+v", repo, digest, idx.Manifests)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(e.reg.URL, "http://")+"/"+repo+"@"+idx.Manifests[0].Digest, name.Insecure)
	art, err := remote.Image(ref)
	if err != nil {
		e.e(err)
	}
	layers, _ := art.Layers()
	rc, err := layers[0].Compressed()
	if err != nil {
		e.e(err)
	}
	doc, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(doc), `"spdxVersion":"SPDX-2.3"`) || !strings.Contains(string(doc), pkg) {
		e.t.Fatalf("the SBOM of %s@%s is not an SPDX 2.3 document naming %s: %.300s", repo, digest, pkg, doc)
	}
}

func (e *reloadEnv) e(err error) {
	e.t.Helper()
	e.t.Fatal(err)
}

// Scan on push (a repository's configuration), scan on pull (the node's
// scanOnPull), start-image-scan by hand, the findings in ECR's shape and
// the SBOM as a referrer, in a local and a cached repository.
func TestScanOnPushPullAndByHand(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]
scanning: {scanOnPull: ["a/lib/*"]}
`)
	if _, err := e.n.VulnDB().ImportPaths(t.Context(), scantest.WriteOSV(t, scantest.Records)); err != nil {
		t.Fatal(err)
	}
	if st := e.adminPost("create-repository", `{"repositoryName":"private/app"}`, nil); st != http.StatusOK {
		t.Fatalf("create-repository: %d", st)
	}
	var cfg admin.PutImageScanningConfigurationResponse
	if st := e.adminPost("put-image-scanning-configuration", `{"repositoryName":"private/app","imageScanningConfiguration":{"scanOnPush":true}}`, &cfg); st != http.StatusOK || !cfg.ImageScanningConfiguration.ScanOnPush {
		t.Fatalf("put-image-scanning-configuration: %d %+v", st, cfg)
	}
	bin := scantest.GoBinary(t)
	want := []string{"DEBIAN-CVE-2024-0727", "GHSA-35jh-r3h4-6jhm", "GO-2099-0001"}

	pushed := e.pushImage("private/app:v1", scantest.Vulnerable(t, bin))
	f := e.findings("private/app", pushed)
	if f.ImageScanStatus.Status != scan.StatusComplete || !slices.Equal(findingNames(f), want) {
		t.Fatalf("scan on push: %+v %q", f.ImageScanStatus, findingNames(f))
	}
	if c := f.ImageScanFindings.FindingSeverityCounts; c["CRITICAL"] != 1 || c["HIGH"] != 2 {
		t.Errorf("severity counts %v", c)
	}
	e.sbomReferrer("private/app", pushed, "lodash")

	// Another repository without scan on push: nothing until start-image-scan.
	other := e.pushImage("private/other:v1", scantest.Fixed(t))
	if st := e.adminPost("describe-image-scan-findings", `{"repositoryName":"private/other","imageId":{"imageTag":"v1"}}`, nil); st != http.StatusNotFound {
		t.Fatalf("findings of an image never scanned: %d, want 404 ScanNotFoundException", st)
	}
	var started admin.StartImageScanResponse
	if st := e.adminPost("start-image-scan", `{"repositoryName":"private/other","imageId":{"imageTag":"v1"}}`, &started); st != http.StatusOK || started.ImageID.ImageDigest != other {
		t.Fatalf("start-image-scan: %d %+v", st, started)
	}
	if f := e.findings("private/other", other); f.ImageScanStatus.Status != scan.StatusComplete || len(findingNames(f)) != 0 {
		t.Fatalf("start-image-scan of the fixed image: %+v %q", f.ImageScanStatus, findingNames(f))
	}

	// Scan on pull: the upstream's image is scanned once a pull stores it.
	e.upA.Push(t, "lib/vuln", "v1", scantest.Vulnerable(t, bin))
	pulled := e.pullImage("a/lib/vuln:v1")
	if f := e.findings("a/lib/vuln", pulled); f.ImageScanStatus.Status != scan.StatusComplete || !slices.Equal(findingNames(f), want) {
		t.Fatalf("scan on pull: %+v %q", f.ImageScanStatus, findingNames(f))
	}
	e.sbomReferrer("a/lib/vuln", pulled, "lodash")
	// A cached repository scanOnPull does not name is not scanned.
	e.upA.Push(t, "other/x", "v1", scantest.Alpine(t))
	x := e.pullImage("a/other/x:v1")
	if st := e.adminPost("describe-image-scan-findings", `{"repositoryName":"a/other/x","imageId":{"imageDigest":"`+x+`"}}`, nil); st != http.StatusNotFound {
		t.Fatalf("findings of a pull scanOnPull does not name: %d, want 404", st)
	}
}

// The scanner's pool is sized at start: a reload keeps scanning.workers
// and scanning.queueSize in force (the config the node reports is the one
// it runs), and applies the rest of scanning.
func TestReloadKeepsTheScanPoolSize(t *testing.T) {
	e := newReloadEnv(t, "scanning: {workers: 2, queueSize: 8}\n")
	e.apply("scanning: {workers: 4, queueSize: 16, scanOnPush: true}\n")
	got := e.n.Live().Config.Scanning
	if got.Workers != 2 || got.QueueSize != 8 || !got.ScanOnPush {
		t.Fatalf("after the reload: workers %d, queueSize %d, scanOnPush %v; want 2, 8 (until a restart) and true", got.Workers, got.QueueSize, got.ScanOnPush)
	}
}

// The node-wide scanning.scanOnPush scans the pushes to the local
// repositories scanning.filters selects, and no other; a repository's own
// put-image-scanning-configuration turns it on outside the filters.
func TestScanOnPushFilters(t *testing.T) {
	e := newReloadEnv(t, `scanning: {scanOnPush: true, filters: ["private/team/*"]}
`)
	if _, err := e.n.VulnDB().ImportPaths(t.Context(), scantest.WriteOSV(t, scantest.Records)); err != nil {
		t.Fatal(err)
	}
	selected := e.pushImage("private/team/app:v1", scantest.Alpine(t))
	if f := e.findings("private/team/app", selected); f.ImageScanStatus.Status != scan.StatusComplete || !slices.Equal(findingNames(f), []string{"ALPINE-CVE-2023-42363"}) {
		t.Fatalf("a push filters select: %+v %q", f.ImageScanStatus, findingNames(f))
	}
	other := e.pushImage("private/other/app:v1", scantest.Fixed(t))
	if err := e.n.Scanner().WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := e.adminPost("describe-image-scan-findings", `{"repositoryName":"private/other/app","imageId":{"imageDigest":"`+other+`"}}`, nil); st != http.StatusNotFound {
		t.Fatalf("a push the filters leave out: %d, want 404 ScanNotFoundException", st)
	}
	if st := e.adminPost("put-image-scanning-configuration", `{"repositoryName":"private/other/app","imageScanningConfiguration":{"scanOnPush":true}}`, nil); st != http.StatusOK {
		t.Fatalf("put-image-scanning-configuration: %d", st)
	}
	again := e.pushImage("private/other/app:v2", scantest.Alpine(t))
	if f := e.findings("private/other/app", again); f.ImageScanStatus.Status != scan.StatusComplete || !slices.Equal(findingNames(f), []string{"ALPINE-CVE-2023-42363"}) {
		t.Fatalf("a push to a repository whose own configuration scans on push: %+v %q", f.ImageScanStatus, findingNames(f))
	}
}
