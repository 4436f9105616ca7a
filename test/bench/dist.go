package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// distVersion is the Distribution release the bench compares Berth with;
// scripts/install-bench-deps installs it.
const distVersion = "v3.1.1"

// findDist returns the Distribution registry binary: path when given,
// else registry in $(go env GOBIN), or $(go env GOPATH)/bin. It must report distVersion.
func findDist(ctx context.Context, path string) (string, error) {
	fix := "run scripts/install-bench-deps (make bench and make bench-smoke run it) or pass -distribution <path>"
	if path == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOBIN GOPATH: %w", err)
		}
		gobin, gopath, _ := strings.Cut(string(out), "\n")
		gopath, _, _ = strings.Cut(strings.TrimSpace(gopath), string(os.PathListSeparator))
		if gobin = strings.TrimSpace(gobin); gobin == "" {
			gobin = filepath.Join(gopath, "bin")
		}
		path = filepath.Join(gobin, "registry")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("the Distribution %s registry is not installed at %s: %s (%w)", distVersion, path, fix, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w; %s", path, err, fix)
	}
	if !strings.Contains(string(out), "distribution/v3 "+distVersion) {
		return "", fmt.Errorf("%s is %q, not Distribution %s: %s", path, strings.TrimSpace(string(out)), distVersion, fix)
	}
	return path, nil
}

// startDist starts Distribution as a pull-through cache of the reference
// upstream: filesystem storage in a fresh directory, a free port on
// 127.0.0.1, log level error. It returns once /v2/ answers.
func (h *harness) startDist(ctx context.Context) (*berthProc, error) {
	d, dir, port, err := h.newProc("distribution")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %q
http:
  addr: "127.0.0.1:%d"
proxy:
  remoteurl: %q
`, d.DataDir, port, h.ref.Upstream)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(h.dist, "serve", cfgPath)
	// Distribution reads OTEL_* from the environment; keep tracing off.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	if err := d.run(ctx, "distribution", cmd); err != nil {
		return nil, err
	}
	return d, nil
}
