package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/test/testreg"
)

// TestSystemdNotifyAndGracefulStop runs berth as systemd would with
// Type=notify: it must send READY=1 once serving and STOPPING=1 on SIGTERM,
// and let a blob stream in flight finish before it exits.
func TestSystemdNotifyAndGracefulStop(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	wait := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s on NOTIFY_SOCKET", want)
			}
		}
	}

	up := testreg.Start(t)
	img := testreg.Image(t, 11, 20<<20)
	up.Push(t, "big/app", "v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	up.SlowBlobs(50 * time.Millisecond) // ~1 s for the blob
	b := StartBerth(t, "", "shutdownTimeout: 20s\nupstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, ""),
		func(b *Berth) { b.Env = []string{"NOTIFY_SOCKET=" + sock} })
	wait("READY=1")

	resp, err := b.Do(context.Background(), http.MethodGet, "/v2/up/big/app/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	wait("STOPPING=1")
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("stream in flight was cut by the shutdown: %v", err)
	}
	if len(rest) != 20<<20-1<<20 {
		t.Fatalf("got %d more bytes, want %d", len(rest), 20<<20-1<<20)
	}
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not exit after the stream finished")
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestCheckConfigExample runs `berth check-config` on the shipped example.
func TestCheckConfigExample(t *testing.T) {
	out, err := exec.Command(binary(t), "check-config", "--config", "../../config.example.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, "listen: nope\nrateLimit:\n  burst: 0\nlog:\n  format: xml\n")
	out, err = exec.Command(binary(t), "check-config", "--config", bad).CombinedOutput()
	if err == nil {
		t.Fatal("an invalid config was accepted")
	}
	for _, want := range []string{"listen", "rateLimit.burst", "log.format"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output does not name %s:\n%s", want, out)
		}
	}
}
