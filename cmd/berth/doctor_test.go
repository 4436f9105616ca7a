package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/testreg"
)

// doctorRun runs berth doctor -o json over client files under dir and
// returns the findings by check, and whether it exited non-zero.
func doctorRun(t *testing.T, tn *testNode, cfg, dir string) (map[string]finding, bool) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), []string{"doctor", "--config", cfg, "-o", "json", "--mirror", tn.reg.URL, "--admin", tn.admin.URL,
		"--docker-daemon-json", filepath.Join(dir, "daemon.json"), "--containerd-config", filepath.Join(dir, "config.toml"),
		"--registries-conf", filepath.Join(dir, "registries.conf"), "--certs-d", filepath.Join(dir, "certs.d")}, &out)
	var res struct{ Findings []finding }
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		t.Fatalf("doctor -o json: %v\n%s", jerr, out.String())
	}
	by := map[string]finding{}
	for _, f := range res.Findings {
		if f.Status != "ok" || by[f.Check].Status == "" {
			by[f.Check] = f
		}
	}
	return by, err != nil
}

func TestDoctorGoodAndBrokenClients(t *testing.T) {
	up := testreg.Start(t)
	tn := startNode(t, "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "berth.yaml")
	writeTestFile(t, cfg, fmt.Sprintf("dataDir: %q\nupstreams:\n  - {name: hub, prefix: hub, registry: docker.io, url: %s, default: true}\n"+
		"  - {name: quay, prefix: quay, registry: quay.io, url: http://127.0.0.1:1, offline: true}\n", filepath.Join(dir, "data"), up.URL))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}

	// Broken: no mirror in daemon.json, no config_path, no hosts.toml, no
	// registries.conf mirror.
	broken := t.TempDir()
	writeTestFile(t, filepath.Join(broken, "daemon.json"), `{"log-driver": "journald"}`)
	writeTestFile(t, filepath.Join(broken, "config.toml"), "version = 2\n")
	writeTestFile(t, filepath.Join(broken, "registries.conf"), "unqualified-search-registries = [\"docker.io\"]\n")
	got, failed := doctorRun(t, tn, cfg, broken)
	if !failed {
		t.Error("doctor exited 0 on broken client configs")
	}
	for _, check := range []string{"docker", "containerd", "containerd/docker.io", "containerd/quay.io", "registries.conf/docker.io"} {
		if f := got[check]; f.Status != "fail" || f.Fix == nil {
			t.Errorf("%s: %+v, want a failure with its fix", check, f)
		}
	}
	if f := got["docker"]; !strings.Contains(f.Fix.Content, tn.reg.URL) || !strings.Contains(f.Fix.Content, "journald") {
		t.Errorf("the daemon.json fix should keep its settings and add the mirror:\n%s", f.Fix.Content)
	}

	// Good: the fixes applied.
	good := t.TempDir()
	certs := filepath.Join(good, "certs.d")
	writeTestFile(t, filepath.Join(good, "daemon.json"), got["docker"].Fix.Content)
	writeTestFile(t, filepath.Join(good, "config.toml"), fmt.Sprintf("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = %q\n", certs))
	for _, reg := range []string{"docker.io", "quay.io"} {
		if _, err := writeHostsToml(certs, reg, tn.reg.URL); err != nil {
			t.Fatal(err)
		}
	}
	var conf strings.Builder
	for _, reg := range []string{"docker.io", "quay.io"} {
		conf.WriteString(strings.TrimPrefix(got["registries.conf/"+reg].Fix.Content, "# add:\n") + "\n")
	}
	writeTestFile(t, filepath.Join(good, "registries.conf"), conf.String())
	got, failed = doctorRun(t, tn, cfg, good)
	if failed {
		t.Errorf("doctor failed on good configs: %+v", got)
	}
	for _, check := range []string{"berth", "berth-admin", "docker", "containerd", "containerd/docker.io", "registries.conf/quay.io", "upstream/hub", "disk", "permissions"} {
		if got[check].Status != "ok" {
			t.Errorf("%s: %+v, want ok", check, got[check])
		}
	}
	if got["upstream/quay"].Status != "skip" {
		t.Errorf("an offline upstream: %+v, want skip", got["upstream/quay"])
	}
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
