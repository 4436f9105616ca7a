package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPrepareNodeWritesHostsToml(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"prepare-node", "--certs-d", dir, "--mirror", "http://127.0.0.1:5000/", "--registries", "docker.io, ghcr.io"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for reg, server := range map[string]string{"docker.io": "https://registry-1.docker.io", "ghcr.io": "https://ghcr.io"} {
		b, err := os.ReadFile(filepath.Join(dir, reg, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		want := "server = \"" + server + "\"\n\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
		if !strings.HasSuffix(string(b), want) {
			t.Errorf("%s/hosts.toml:\n%s\nwant it to end with:\n%s", reg, b, want)
		}
	}
	if err := run(context.Background(), []string{"prepare-node", "--certs-d", dir, "--registries", "../etc"}, &out); err == nil {
		t.Error("prepare-node accepted a registry name with a slash")
	}
	if err := run(context.Background(), []string{"prepare-node"}, &out); err == nil {
		t.Error("prepare-node without --certs-d or --data-dir succeeded")
	}
	if err := run(context.Background(), []string{"prepare-node", "--data-dir", filepath.Join(dir, "d"), "--owner", "alice"}, &out); err == nil ||
		!strings.Contains(err.Error(), "uid:gid") {
		t.Errorf("--owner alice: %v, want an error saying uid:gid", err)
	}
}

func TestHealthcheck(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, &out)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("healthcheck of a node not ready: %v, want an error with 503", err)
	}
	ready.Store(true)
	if err := run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, &out); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, &out); err == nil ||
		!strings.Contains(err.Error(), "not answering") {
		t.Fatalf("healthcheck of a closed port: %v", err)
	}
}
