package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/scan/scantest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestScanOnPushSBOMSeenByOras: a running berth with scanOnPush scans a
// pushed image against the imported database; the CLI shows the seeded
// findings, and oras discover lists the image's SBOM as a referrer.
func TestScanOnPushSBOMSeenByOras(t *testing.T) {
	oras, err := exec.LookPath("oras")
	if err != nil {
		t.Fatalf("oras is not installed (scripts/install-test-deps installs it): %v", err)
	}
	db := scantest.WriteOSV(t, scantest.Records)
	b := StartBerth(t, "", "scanning:\n  vulnDB: "+db+"\n  scanOnPush: true\n")
	b.WaitLog("the database's import", 30*time.Second, func(log string) bool {
		return strings.Contains(log, "vulnerability database imported")
	})
	ref, err := name.ParseReference(b.Addr+"/private/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, scantest.Vulnerable(t, scantest.GoBinary(t))); err != nil {
		t.Fatalf("push: %v", err)
	}
	var f admin.DescribeImageScanFindingsResponse
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for f.ImageScanStatus.Status != "COMPLETE" {
		if time.Now().After(deadline) {
			t.Fatalf("no complete scan within a minute: %+v", f.ImageScanStatus)
		}
		<-tick.C
		f = admin.DescribeImageScanFindingsResponse{}
		berthCLI(t, b, &f, "describe-image-scan-findings", "--repository-name", "private/app", "--image-id", "imageTag=v1")
	}
	var names []string
	for _, x := range f.ImageScanFindings.Findings {
		names = append(names, x.Name)
	}
	if got := strings.Join(names, " "); got != "GO-2099-0001 DEBIAN-CVE-2024-0727 GHSA-35jh-r3h4-6jhm" {
		t.Fatalf("findings %q", got)
	}
	out, err := exec.Command(oras, "discover", "--plain-http", "--format", "json", b.Addr+"/private/app:v1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "application/spdx+json") || !strings.Contains(string(out), `"io.berth.sbom.scanner"`) {
		t.Fatalf("oras discover: %v\n%s", err, out)
	}
}
