package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth/test/clients"
	"berth/test/testreg"
)

// remoteHost is a second network namespace joined to the test's by a veth
// pair, so a client there reaches Berth from an address that is not
// loopback (10.213.0.2 to Berth's 10.213.0.1).
type remoteHost struct {
	ns     string
	hostIP string
}

func newRemoteHost(t *testing.T) *remoteHost {
	t.Helper()
	clients.RequireIsolatedNetns(t)
	ip := clients.LookBin(t, "ip")
	h := &remoteHost{ns: fmt.Sprintf("berth-remote-%d", os.Getpid()), hostIP: "10.213.0.1"}
	veth := fmt.Sprintf("bv%d", os.Getpid()%1000000)
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ipCmd("netns", "add", h.ns)
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", h.ns).Run() })
	ipCmd("link", "add", veth+"a", "type", "veth", "peer", "name", veth+"b")
	t.Cleanup(func() { _ = exec.Command(ip, "link", "del", veth+"a").Run() })
	ipCmd("link", "set", veth+"b", "netns", h.ns)
	ipCmd("addr", "add", h.hostIP+"/24", "dev", veth+"a")
	ipCmd("link", "set", veth+"a", "up")
	ipCmd("-n", h.ns, "addr", "add", "10.213.0.2/24", "dev", veth+"b")
	ipCmd("-n", h.ns, "link", "set", veth+"b", "up")
	ipCmd("-n", h.ns, "link", "set", "lo", "up")
	return h
}

// crane runs the crane program in the remote namespace.
func (h *remoteHost) crane(ctx context.Context, t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := clients.LookBin(t, "crane")
	cmd := exec.CommandContext(ctx, clients.LookBin(t, "ip"), append([]string{"netns", "exec", h.ns, bin}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAnonymousWritesOnlyFromLoopback: with auth off, a client on another
// host may pull but not push or delete, a client on this host may do all
// three, and local.allowAnonymousRemoteWrites opens writes to everyone.
func TestAnonymousWritesOnlyFromLoopback(t *testing.T) {
	h := newRemoteHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img := testreg.Image(t, 51, 2048)
	tar := filepath.Join(t.TempDir(), "img.tar")
	ref, err := name.ParseReference("remote.example/private/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(tar, ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	everywhere := func(b *Berth) { b.Listen = "0.0.0.0:" + b.Addr[strings.LastIndexByte(b.Addr, ':')+1:] }
	start := func(extra string) (*Berth, string) {
		b := StartBerth(t, "", "local:\n  prefixes: [private]\n  autoCreate: true\n"+extra, everywhere)
		return b, h.hostIP + b.Addr[strings.LastIndexByte(b.Addr, ':'):]
	}

	b, remoteAddr := start("")
	if !strings.Contains(b.Log(), "auth is off: anyone who reaches these listeners may pull; pushes and deletes are accepted from this host (loopback) only") {
		t.Errorf("no start-up warning about what is open:\n%s", b.Log())
	}
	out, err := h.crane(ctx, t, "push", "--insecure", tar, remoteAddr+"/private/app:v1")
	if err == nil || !strings.Contains(out, "DENIED") || !strings.Contains(out, "allowAnonymousRemoteWrites") {
		t.Fatalf("an anonymous push from another host: err %v, output %s; want DENIED naming local.allowAnonymousRemoteWrites", err, out)
	}
	if err := crane.Push(img, b.Addr+"/private/app:v1", crane.Insecure, crane.WithContext(ctx)); err != nil {
		t.Fatalf("an anonymous push from this host: %v", err)
	}
	if out, err := h.crane(ctx, t, "digest", "--insecure", remoteAddr+"/private/app:v1"); err != nil || strings.TrimSpace(out) != d.String() {
		t.Fatalf("a pull from another host: %v %s", err, out)
	}
	if out, err := h.crane(ctx, t, "delete", "--insecure", remoteAddr+"/private/app@"+d.String()); err == nil || !strings.Contains(out, "DENIED") {
		t.Fatalf("an anonymous delete from another host: err %v, output %s; want DENIED", err, out)
	}

	b2, remoteAddr2 := start("  allowAnonymousRemoteWrites: true\n")
	if out, err := h.crane(ctx, t, "push", "--insecure", tar, remoteAddr2+"/private/app:v1"); err != nil {
		t.Fatalf("with allowAnonymousRemoteWrites, a push from another host: %v %s", err, out)
	}
	if !strings.Contains(b2.Log(), "local.allowAnonymousRemoteWrites is true") {
		t.Errorf("no start-up warning that anyone may write:\n%s", b2.Log())
	}
}
