package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestServeFailsBeforeServingWhenAPortIsTaken: a node whose admin port is
// taken fails to start without serving anything: the registry listener it
// bound first is closed again, not left answering /v2/ until the process
// exits.
func TestServeFailsBeforeServingWhenAPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.yaml")
	body := fmt.Sprintf("listen: \"127.0.0.1:0\"\ndataDir: %q\nadmin: {listen: %q}\n", filepath.Join(dir, "data"), taken.Addr().String())
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	err = Serve(context.Background(), cfg, Options{Logger: zap.New(core)})
	if err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Fatalf("Serve with the admin port taken: %v, want the admin listener's error", err)
	}
	var registry string
	for _, e := range logs.FilterMessage("listening").All() {
		if e.ContextMap()["listener"] == "registry" {
			registry, _ = e.ContextMap()["addr"].(string)
		}
	}
	if registry == "" {
		t.Fatal("the registry listener was not bound before the admin listener")
	}
	if _, err := net.Dial("tcp", registry); err == nil {
		t.Fatalf("the registry listener %s still accepts connections after the failed start", registry)
	}
}
