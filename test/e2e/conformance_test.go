package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/testreg"
)

// conformanceBin finds the OCI distribution-spec conformance program, which
// scripts/install-test-deps installs with go install.
func conformanceBin(t *testing.T) string {
	if p, err := exec.LookPath("conformance"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "conformance")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("the OCI conformance program is not installed: run `scripts/install-test-deps` " +
		"(or opt out of the end-to-end tests with make test-unit or BERTH_E2E=0)")
	return ""
}

// TestOCIConformance runs the official OCI distribution-spec v1.1
// conformance suite (pull, push, content discovery, content management)
// against a local namespace of a Berth that also has a default upstream,
// so local repositories are reached through the configured local prefix.
func TestOCIConformance(t *testing.T) {
	bin := conformanceBin(t)
	up := testreg.Start(t)
	b := StartBerth(t, "", "local:\n  prefixes: [private]\n  autoCreate: true\nrateLimit:\n  disabled: true\nupstreams:\n"+
		upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	results := t.TempDir()
	writeFile(t, filepath.Join(results, "oci-conformance.yaml"), "{}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+b.Addr,
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_REPO1=private/conformance/repo1",
		"OCI_REPO2=private/conformance/repo2",
		"OCI_RESULTS_DIR="+results,
		"OCI_CONFIGURATION="+filepath.Join(results, "oci-conformance.yaml"),
		"OCI_LOG=warn",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance report:\n%s", lastLines(string(out), 40))
	if err != nil {
		t.Fatalf("conformance suite failed: %v", err)
	}
	// The program exits 0 when it could not start at all: require its report.
	res, err := os.ReadFile(filepath.Join(results, "results.yaml"))
	if err != nil {
		t.Fatalf("no results.yaml, the suite did not run: %v", err)
	}
	if !strings.Contains(string(res), "pass") || strings.Contains(string(out), "*** Conformance test detected a failure") {
		t.Fatalf("conformance results:\n%s", lastLines(string(res), 40))
	}
	if up.Count("total") != 0 {
		t.Fatalf("local pushes reached the upstream: %v", up.Requests())
	}
}
