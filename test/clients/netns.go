package clients

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvInNetns is set to "1" in the re-executed test binary that runs inside
// the private network namespace.
const EnvInNetns = "BERTH_IN_NETNS"

// netnsUnavailable explains why the isolated namespace could not be set up
// ("" when we are inside it).
var netnsUnavailable = "not running inside the isolated network namespace: " +
	"call clients.MainInNetns(m) from TestMain"

// EnvE2E, set to "0", turns the end-to-end tests off: MainInNetns then runs
// no test at all. It is the documented opt-out (make test-unit does the same);
// without it a machine that cannot run the tests fails them.
const EnvE2E = "BERTH_E2E"

// fixHint is how to get what the end-to-end tests need, or opt out.
const fixHint = "run `sudo scripts/install-test-deps` and the tests as root (sudo make test), " +
	"or opt out of the end-to-end tests with `make test-unit` or BERTH_E2E=0"

// MainInNetns is meant to be the whole body of TestMain:
//
//	func TestMain(m *testing.M) { clients.MainInNetns(m) }
//
// Outside the namespace it re-executes the test binary (same arguments) as
// `unshare --net --mount --propagation private -- sh -c netnsScript ...`
// (lo up, private tmpfs on /run, DNS pointed at 127.0.0.1) with
// BERTH_IN_NETNS=1, streams its output, forwards signals and exits with its
// status. Inside the namespace it checks that only loopback is up, removes
// stale /tmp/berth-* dirs of dead test processes, runs the tests and then
// the cleanups. If the namespace cannot be created (not root, no
// unshare/ip, no privilege), the tests still run but every test calling
// RequireIsolatedNetns (all helpers that start daemons do) fails with the
// command that fixes it. With BERTH_E2E=0 no test runs. It never returns.
func MainInNetns(m *testing.M, cleanups ...func()) {
	if os.Getenv(EnvE2E) == "0" {
		fmt.Fprintf(os.Stderr, "berth/test/clients: %s=0: end-to-end tests turned off, none run\n", EnvE2E)
		os.Exit(0)
	}
	runTests := func() int {
		code := m.Run()
		for _, c := range cleanups {
			c()
		}
		return code
	}
	if os.Getenv(EnvInNetns) == "1" {
		if err := checkIsolated(); err != nil {
			netnsUnavailable = fmt.Sprintf("%s=1 but the network namespace is not isolated: %v", EnvInNetns, err)
		} else {
			netnsUnavailable = ""
		}
		sweepStaleDirs()
		code := runTests()
		removeDockerConfigDir()
		os.Exit(code)
	}
	unshare, ip, reason := canReexec()
	if reason != "" {
		netnsUnavailable = "cannot create an isolated network namespace: " + reason
		fmt.Fprintf(os.Stderr, "berth/test/clients: %s; tests needing real clients will FAIL\n", netnsUnavailable)
		os.Exit(runTests())
	}
	os.Exit(reexecInNetns(unshare, ip))
}

// RequireIsolatedNetns fails the test unless we run inside the private
// network namespace set up by MainInNetns.
func RequireIsolatedNetns(t testing.TB) {
	t.Helper()
	if netnsUnavailable != "" {
		t.Fatalf("%s; %s", netnsUnavailable, fixHint)
	}
}

func canReexec() (unshare, ip, reason string) {
	if os.Geteuid() != 0 {
		return "", "", "not root (network namespaces need root: sudo make test)"
	}
	var err error
	if unshare, err = exec.LookPath("unshare"); err != nil {
		return "", "", "unshare not found (apt-get install -y util-linux)"
	}
	if ip, err = exec.LookPath("ip"); err != nil {
		return "", "", "ip not found (apt-get install -y iproute2)"
	}
	// Probe: some sandboxes deny unshare(2) even to root.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, unshare, "--net", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", netnsScript, "berth-netns", ip, "true").CombinedOutput()
	if err != nil {
		return "", "", fmt.Sprintf("probe `unshare --net --mount` (lo up, tmpfs on /run) failed, the machine denies namespaces even to root "+
			"(a container without CAP_SYS_ADMIN? use a VM or a privileged container): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return unshare, ip, ""
}

// netnsScript runs as `sh -c netnsScript berth-netns IP BINARY ARGS...` inside
// the new namespaces: bring lo up, put a private tmpfs over /run (dockerd and
// containerd create /run/docker, /run/containerd; this keeps the host's /run
// untouched, and the mount vanishes with the private mount namespace), point
// DNS at 127.0.0.1 (so even name lookups of a public registry, e.g. dockerd's
// fallback to Docker Hub, target loopback only), then exec the test binary.
const netnsScript = `"$1" link set lo up || { echo "berth-netns: ip link set lo up failed" >&2; exit 125; }
mount -n -t tmpfs -o mode=755,size=64m berth-run /run || { echo "berth-netns: mount tmpfs on /run failed" >&2; exit 125; }
printf 'nameserver 127.0.0.1\n' > /run/berth-resolv.conf || exit 125
if [ -e /etc/resolv.conf ]; then mount -n --bind /run/berth-resolv.conf /etc/resolv.conf || { echo "berth-netns: bind resolv.conf failed" >&2; exit 125; }; fi
shift
exec "$@"`

func reexecInNetns(unshare, ip string) int {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	// unshare(1) without --fork execs in place, so the child PID is the test
	// binary itself. --mount gives a private mount namespace (propagation
	// private by default), so mounts made by the daemons vanish with it.
	args := []string{"--net", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", netnsScript,
		"berth-netns", ip, self}
	args = append(args, os.Args[1:]...)
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), EnvInNetns+"=1")
	cmd.Stdin = os.Stdin
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "berth/test/clients: re-exec in netns: %v\n", err)
		return 1
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "berth/test/clients: test binary in netns killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal())
		}
		if ee.ExitCode() == 125 {
			fmt.Fprintln(os.Stderr, "berth/test/clients: could not set up the new namespaces")
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "berth/test/clients: %v\n", err)
	return 1
}

// checkIsolated verifies that loopback is up and that every other interface
// (a fresh netns may hold down fallback tunnels such as sit0) is down.
func checkIsolated() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	loUp := false
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			loUp = loUp || i.Flags&net.FlagUp != 0
			continue
		}
		if i.Flags&net.FlagUp != 0 {
			return fmt.Errorf("non-loopback interface %s is up", i.Name)
		}
	}
	if !loUp {
		return errors.New("loopback is not up")
	}
	return nil
}
