package security

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/scan/scantest"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// scanStatus polls describe-image-scan-findings until the scan of digest
// has an outcome, and returns its status, description and body.
func (n *node) scanStatus(t *testing.T, repo, digest string) (status, description string, body []byte) {
	t.Helper()
	eventually(t, 60*time.Second, "a scan outcome for "+repo, func() bool {
		req, _ := http.NewRequest(http.MethodPost, n.Admin+"/admin/v1/describe-image-scan-findings",
			strings.NewReader(`{"repositoryName":"`+repo+`","imageId":{"imageDigest":"`+digest+`"}}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		var r struct {
			ImageScanStatus struct{ Status, Description string } `json:"imageScanStatus"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil {
			return false
		}
		status, description = r.ImageScanStatus.Status, r.ImageScanStatus.Description
		return status != "IN_PROGRESS"
	})
	return status, description, body
}

func (n *node) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(n.URL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	d, _ := img.Digest()
	return d.String()
}

// A pushed image is hostile input to the scanner (docs/security.md, "A
// hostile image cannot harm the scanner"): each layer below fails its
// scan with the reason or is read as nothing, writes nothing outside the
// scanner's scratch directory, and the node keeps serving.
func TestHostileImagesCannotHarmTheScanner(t *testing.T) {
	db := scantest.WriteOSV(t, scantest.Records)
	n := startBerth(t, "scanning: {scanOnPush: true, vulnDB: "+db+", maxImageBytes: 67108864, maxFileBytes: 1048576}\n")
	eventually(t, 30*time.Second, "the vulnerability database imported", func() bool {
		req, _ := http.NewRequest(http.MethodPost, n.Admin+"/admin/v1/describe-vulndb", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	outside := filepath.Join(t.TempDir(), "escaped")
	rel, err := filepath.Rel("/", outside)
	if err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 32)
	secret := writeFile(t, "secret", "root:x:0:0:the host's secret\n")
	rows := []struct {
		name   string
		layer  []scantest.File
		status string
		want   string
	}{
		{"tar bomb", []scantest.File{{Name: "zeros", Size: 256 << 20}}, "FAILED", "maxImageBytes"},
		{"path escape", []scantest.File{{Name: up + rel, Body: []byte("x")}}, "FAILED", "escapes the image root"},
		{"hard link escape", []scantest.File{{Name: "var/lib/dpkg/status", Type: '1', Link: up + strings.TrimPrefix(secret, "/")}}, "FAILED", "escapes the image root"},
		{"symlink to a host file", []scantest.File{scantest.DebianRelease,
			{Name: "var/lib/dpkg/status", Type: '2', Link: secret}}, "COMPLETE", ""},
		{"huge package database", []scantest.File{{Name: "var/lib/dpkg/status", Size: 8 << 20}}, "COMPLETE", "1 files were skipped"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			repo := "private/hostile/" + strings.ReplaceAll(r.name, " ", "-")
			dg := n.push(t, repo+":v1", scantest.Image(t, scantest.Layer(t, r.layer...)))
			status, desc, body := n.scanStatus(t, repo, dg)
			if status != r.status || !strings.Contains(desc, r.want) {
				t.Fatalf("scan: %s %q, want %s with %q", status, desc, r.status, r.want)
			}
			if strings.Contains(string(body), "the host's secret") {
				t.Fatalf("the findings carry a host file's content: %s", body)
			}
		})
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatalf("a layer's entry was written outside the scanner's scratch directory: %v", err)
	}
	// The node still serves, and scans a good image after the bad ones.
	good := n.push(t, "private/app/good:v1", scantest.Vulnerable(t, scantest.GoBinary(t)))
	if status, desc, _ := n.scanStatus(t, "private/app/good", good); status != "COMPLETE" {
		t.Fatalf("a good image after the hostile ones: %s %q", status, desc)
	}
}
