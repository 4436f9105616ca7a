package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"berth/test/clients"
	"berth/test/testreg"
)

// doctor runs the berth binary's doctor against b with client files
// under dir; it returns each check's status and whether it exited 0.
func doctor(t *testing.T, b *Berth, dir string) (map[string]string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "doctor", "--config", b.Config, "-o", "json", "--mirror", b.URL, "--admin", b.AdminURL,
		"--docker-daemon-json", filepath.Join(dir, "daemon.json"), "--containerd-config", filepath.Join(dir, "config.toml"),
		"--registries-conf", filepath.Join(dir, "registries.conf")).Output()
	var res struct {
		Findings []struct{ Check, Status string }
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("berth doctor -o json: %v (%v)\n%s", jerr, err, out)
	}
	st := map[string]string{}
	for _, f := range res.Findings {
		if st[f.Check] == "" || f.Status != "ok" {
			st[f.Check] = f.Status
		}
	}
	return st, err == nil
}

// TestDoctorClientConfigs: berth doctor fails on broken Docker, containerd
// and podman configs and passes once they send pulls to the node.
func TestDoctorClientConfigs(t *testing.T) {
	up := testreg.Start(t)
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("hub", "hub", "docker.io", up.URL, true, ""))
	broken := t.TempDir()
	writeFile(t, filepath.Join(broken, "daemon.json"), `{}`)
	writeFile(t, filepath.Join(broken, "config.toml"), "version = 2\n")
	writeFile(t, filepath.Join(broken, "registries.conf"), "")
	st, ok := doctor(t, b, broken)
	if ok || st["docker"] != "fail" || st["containerd"] != "fail" || st["containerd/docker.io"] != "fail" || st["registries.conf/docker.io"] != "fail" {
		t.Fatalf("broken configs: exit 0 %v, %v", ok, st)
	}

	good := t.TempDir()
	hosts := clients.WriteHostsDir(t, b.URL, "docker.io")
	writeFile(t, filepath.Join(good, "daemon.json"), `{"registry-mirrors": ["`+b.URL+`"]}`)
	writeFile(t, filepath.Join(good, "config.toml"), "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \""+hosts+"\"\n")
	writeFile(t, filepath.Join(good, "registries.conf"), "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \""+b.Addr+"\"\ninsecure = true\n")
	st, ok = doctor(t, b, good)
	if !ok {
		t.Fatalf("good configs: doctor failed: %v", st)
	}
	for _, c := range []string{"berth", "docker", "containerd", "containerd/docker.io", "registries.conf/docker.io", "upstream/hub"} {
		if st[c] != "ok" {
			t.Errorf("%s: %s, want ok (%v)", c, st[c], st)
		}
	}

}
