package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth/test/clients"
	"berth/test/testreg"
)

// runConformance runs the conformance program against b with env (OCI_*
// settings on top of the registry's address) and fails the test unless the
// suite ran and passed.
func runConformance(t *testing.T, b *Berth, env ...string) {
	t.Helper()
	out, results, runErr := execConformance(t, b, env...)
	if runErr != nil {
		t.Fatalf("conformance suite failed: %v", runErr)
	}
	// The program exits 0 when it could not start at all: require its report.
	res, err := os.ReadFile(filepath.Join(results, "results.yaml"))
	if err != nil {
		t.Fatalf("no results.yaml, the suite did not run: %v", err)
	}
	if !strings.Contains(string(res), "pass") || strings.Contains(out, "*** Conformance test detected a failure") {
		t.Fatalf("conformance results:\n%s", lastLines(string(res), 40))
	}
}

// execConformance runs the program and returns its output, its results
// directory and its exit error.
func execConformance(t *testing.T, b *Berth, env ...string) (out, results string, err error) {
	t.Helper()
	bin := clients.LookBin(t, "conformance")
	results = t.TempDir()
	writeFile(t, filepath.Join(results, "oci-conformance.yaml"), "{}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+b.Addr,
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_RESULTS_DIR="+results,
		"OCI_CONFIGURATION="+filepath.Join(results, "oci-conformance.yaml"),
		"OCI_LOG=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	b2, err := cmd.CombinedOutput()
	t.Logf("conformance report:\n%s", lastLines(string(b2), 40))
	return string(b2), results, err
}

// TestOCIConformance runs the official OCI distribution-spec v1.1
// conformance suite (pull, push, content discovery, content management)
// against a local namespace of a Berth that also has a default upstream,
// so local repositories are reached through the configured local prefix.
func TestOCIConformance(t *testing.T) {
	up := testreg.Start(t)
	b := StartBerth(t, "", "local:\n  prefixes: [private]\n  autoCreate: true\nrateLimit:\n  disabled: true\nupstreams:\n"+
		upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	runConformance(t, b,
		"OCI_REPO1=private/conformance/repo1",
		"OCI_REPO2=private/conformance/repo2",
	)
	if up.Count("total") != 0 {
		t.Fatalf("local pushes reached the upstream: %v", up.Requests())
	}
}

// TestOCIConformanceCachedReadOnly runs the suite's read-only mode (no push,
// no delete) against a cached namespace: the upstream holds two tagged
// images, and every tag, manifest and blob the suite asks for is fetched
// through Berth.
func TestOCIConformanceCachedReadOnly(t *testing.T) {
	up := testreg.Start(t)
	var tags, manifests, blobs []string
	for i, layers := range []int{2, 1} {
		img := realImage(t, uint64(80+i), layers, "amd64", true)
		tag := []string{"v1", "v2"}[i]
		d := up.Push(t, "conformance/ro", tag, img)
		tags, manifests = append(tags, tag), append(manifests, d.String())
		blobs = append(blobs, blobDigests(t, img)...)
	}
	b := StartBerth(t, "", "rateLimit:\n  disabled: true\nupstreams:\n"+
		upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	out, _, err := execConformance(t, b,
		"OCI_REPO1=hub/conformance/ro",
		"OCI_REPO2=hub/conformance/ro",
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_REFERRER=false",
		"OCI_RO_DATA_TAGS="+strings.Join(tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(blobs, " "),
	)
	// The pinned program, once it has printed its report, crashes writing
	// results.yaml in read-only mode (a nil test-data entry for the skipped
	// blob push tests), so the printed report is what is checked here.
	if err != nil && !strings.Contains(out, "ReportResultsYAML") {
		t.Fatalf("conformance suite failed: %v", err)
	}
	failedLine := regexp.MustCompile(`(?m)^\s*[A-Za-z].*\.{2,}:\s+FAIL\s*$`) // a FAIL entry of the report
	if !regexp.MustCompile(`Read Only Inputs\.*:\s+Pass`).MatchString(out) || failedLine.MatchString(out) {
		t.Fatalf("read-only conformance run did not pass: %s", failedLine.FindAllString(out, -1))
	}
	if up.Count("GET manifests")+up.Count("HEAD manifests") == 0 {
		t.Fatalf("the suite's pulls never reached the upstream: %v", up.Requests())
	}
}
