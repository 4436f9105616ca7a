package node

import (
	"os"
	"path/filepath"
	"testing"

	"berth/config"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Secret files readable by others are warned about, naming the key, the
// file and the fix; private ones are not.
func TestWarnReadableSecrets(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "hub-password")
	private := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(open, []byte("pw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(private, []byte("00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Upstreams[0].Username, cfg.Upstreams[0].PasswordFile = "me", open
	cfg.Cluster.GossipAddr, cfg.Cluster.SecretFile = "127.0.0.1:0", private
	core, logs := observer.New(zap.WarnLevel)
	warnReadableSecrets(zap.New(core), cfg)
	got := logs.All()
	if len(got) != 1 {
		t.Fatalf("%d warnings, want 1: %+v", len(got), got)
	}
	f := got[0].ContextMap()
	if f["key"] != "upstreams[0].passwordFile" || f["file"] != open || f["fix"] != "chmod 600 "+open {
		t.Fatalf("warning fields %v", f)
	}
}
