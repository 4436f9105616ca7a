package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMakeBuildVersion builds berth the way the README says (make build)
// with the go command's VCS stamping off, as some Go environments have it,
// and checks that `berth version` still names the commit, the build time and
// the Go version.
func TestMakeBuildVersion(t *testing.T) {
	root := repoRoot()
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v (the test needs a git checkout)", err)
	}
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("make", "-C", root, "build", "BIN="+bin)
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("berth version: %v", err)
	}
	got := string(out)
	if !strings.Contains(got, "revision: "+strings.TrimSpace(string(head))) {
		t.Errorf("berth version does not name the commit %s:\n%s", head, got)
	}
	m := regexp.MustCompile(`built: +(\S+)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("berth version has no build time:\n%s", got)
	}
	if _, err := time.Parse(time.RFC3339, m[1]); err != nil {
		t.Errorf("build time %q is not RFC 3339: %v", m[1], err)
	}
	if strings.HasPrefix(got, "berth dev") || !strings.Contains(got, "go:       "+runtime.Version()) {
		t.Errorf("berth version lacks the module version or the Go version:\n%s", got)
	}
}
