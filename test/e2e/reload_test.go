package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/test/testreg"
)

// TestReloadConfigOnSIGHUP: a changed upstream rule takes effect for new
// requests while a long blob stream goes on; a broken config is refused
// and the running one stays.
func TestReloadConfigOnSIGHUP(t *testing.T) {
	one, two := testreg.Start(t), testreg.Start(t)
	img := testreg.Image(t, 51, 16<<20)
	one.Push(t, "team/app", "v1", img)
	two.Push(t, "team/other", "v1", testreg.Image(t, 52, 4096))
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	one.SlowBlobs(100 * time.Millisecond) // ~1.6 s for the blob
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("one", "one", "one.test", one.URL, false, ""))

	resp, err := b.Do(context.Background(), http.MethodGet, "/v2/one/team/app/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}

	// Add a rule and reload while the stream runs.
	cfg, err := os.ReadFile(b.Config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, b.Config, strings.Replace(string(cfg), "upstreams:\n", "upstreams:\n"+upstreamConfig("two", "two", "two.test", two.URL, false, ""), 1))
	b.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.Log(), "config reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload in the log:\n%s", lastLines(b.Log(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := testreg.PullAll(b.Addr + "/two/team/other:v1"); err != nil {
		t.Fatalf("new rule after reload: %v", err)
	}
	if two.Count("GET manifests") != 1 {
		t.Fatalf("the new upstream saw %d manifest GETs", two.Count("GET manifests"))
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 15<<20 {
		t.Fatalf("stream across the reload: %d more bytes, %v", len(rest), err)
	}

	// A broken config is refused; the running rules keep working.
	writeFile(t, b.Config, "rateLimit:\n  burst: -1\n"+string(cfg))
	b.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(b.Log(), "config not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("broken config not refused:\n%s", lastLines(b.Log(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(b.Log(), "rateLimit.burst") {
		t.Fatal("the refusal does not say why")
	}
	if _, err := testreg.PullAll(b.Addr + "/two/team/other:v1"); err != nil {
		t.Fatalf("running config lost after a refused reload: %v", err)
	}
}
