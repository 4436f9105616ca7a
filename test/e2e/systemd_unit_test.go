package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"berth/test/clients"
)

// TestSystemdUnit checks systemd/berth.service: systemd-analyze rates its
// hardening 2.5 or better, it may bind ports below 1024 and nothing else,
// and a reload checks the config before it signals berth.
func TestSystemdUnit(t *testing.T) {
	unit := filepath.Join(repoRoot(), "systemd", "berth.service")
	body, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	analyze := clients.LookBin(t, "systemd-analyze")
	out, err := exec.Command(analyze, "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for berth\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.5 {
		t.Errorf("systemd-analyze security rates the unit %.1f, want 2.5 or less:\n%s", level, out)
	}
	u := string(body)
	for _, want := range []string{"\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n", "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"} {
		if !strings.Contains(u, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	check := strings.Index(u, "\nExecReload=/usr/local/bin/berth check-config --config /etc/berth/config.yaml\n")
	signal := strings.Index(u, "\nExecReload=/bin/kill -HUP $MAINPID\n")
	if check < 0 || signal < check {
		t.Errorf("a reload must run berth check-config and then send SIGHUP (ExecReload lines in that order)")
	}
}
