package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/scan"
	"berth/scan/scantest"

	"github.com/google/go-containerregistry/pkg/crane"
)

// describe-images shows each image's latest scan as ECR does
// (imageScanStatus, and for a complete scan imageScanFindingsSummary with
// the severity counts and times), in JSON and in its table; an image
// never scanned has neither.
func TestDescribeImagesShowsScans(t *testing.T) {
	a := startNode(t, "")
	if _, err := a.n.VulnDB().ImportPaths(t.Context(), scantest.WriteOSV(t, scantest.Records)); err != nil {
		t.Fatal(err)
	}
	for tag, img := range map[string]func() error{
		"v1": func() error {
			return crane.Push(scantest.Vulnerable(t, scantest.GoBinary(t)), a.host()+"/private/app:v1")
		},
		"v2": func() error { return crane.Push(scantest.Fixed(t), a.host()+"/private/app:v2") },
		"v3": func() error { return crane.Push(scantest.Alpine(t), a.host()+"/private/app:v3") },
	} {
		if err := img(); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
	}
	for _, tag := range []string{"v1", "v2"} {
		if out, err := bundleCmd(t, a, "start-image-scan", "--repository-name", "private/app", "--image-id", "imageTag="+tag); err != nil {
			t.Fatalf("start-image-scan %s: %v\n%s", tag, err, out)
		}
	}
	if err := a.n.Scanner().WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	out, err := bundleCmd(t, a, "describe-images", "--repository-name", "private/app", "-o", "json")
	if err != nil {
		t.Fatalf("describe-images: %v\n%s", err, out)
	}
	var di admin.DescribeImagesResponse
	if err := json.Unmarshal([]byte(out), &di); err != nil {
		t.Fatalf("describe-images: %v\n%s", err, out)
	}
	byTag := map[string]admin.ImageDetail{}
	for _, d := range di.ImageDetails {
		if len(d.ImageTags) > 0 { // the SBOMs are untagged referrers
			byTag[d.ImageTags[0]] = d
		}
	}
	db, err := a.n.VulnDB().Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[string]map[string]int{"v1": {"CRITICAL": 1, "HIGH": 2}, "v2": {}} {
		d := byTag[tag]
		if d.ImageScanStatus == nil || d.ImageScanStatus.Status != scan.StatusComplete || d.ImageScanStatus.Description == "" {
			t.Fatalf("%s: imageScanStatus %+v, want COMPLETE with a description", tag, d.ImageScanStatus)
		}
		f := d.ImageScanFindingsSummary
		if f == nil || !maps.Equal(f.FindingSeverityCounts, want) {
			t.Fatalf("%s: imageScanFindingsSummary %+v, want counts %v", tag, f, want)
		}
		if f.ImageScanCompletedAt == nil || time.Since(*f.ImageScanCompletedAt) > time.Hour ||
			f.VulnerabilitySourceUpdatedAt == nil || f.VulnerabilitySourceUpdatedAt.IsZero() ||
			!f.VulnerabilitySourceUpdatedAt.Equal(db.Newest) && !f.VulnerabilitySourceUpdatedAt.Equal(db.ImportedAt) {
			t.Errorf("%s: times %v, %v; database newest record %v", tag, f.ImageScanCompletedAt, f.VulnerabilitySourceUpdatedAt, db.Newest)
		}
	}
	if d := byTag["v3"]; d.ImageScanStatus != nil || d.ImageScanFindingsSummary != nil {
		t.Errorf("an image never scanned: %+v %+v, want neither", d.ImageScanStatus, d.ImageScanFindingsSummary)
	}
	if !strings.Contains(out, `"findingSeverityCounts":{}`) && !strings.Contains(out, `"findingSeverityCounts": {}`) {
		t.Errorf("a clean image's counts are not an empty object:\n%s", out)
	}

	table, err := bundleCmd(t, a, "describe-images", "--repository-name", "private/app", "-o", "table")
	if err != nil {
		t.Fatalf("describe-images -o table: %v\n%s", err, table)
	}
	for _, want := range []string{"SCAN", "COMPLETE CRITICAL:1 HIGH:2", "COMPLETE none"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}
