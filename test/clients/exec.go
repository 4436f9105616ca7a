package clients

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CmdTimeout bounds every client command (ctr, docker, ...) the harness runs.
var CmdTimeout = 2 * time.Minute

// DaemonStartTimeout bounds how long a daemon may take to answer on its socket.
var DaemonStartTimeout = 60 * time.Second

// runCmd runs a short-lived command with a timeout, in its own process group
// (the whole group is killed on timeout). It returns stdout; on failure the
// error includes stderr.
func runCmd(ctx context.Context, env []string, name string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, CmdTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s",
			name, strings.Join(args, " "), err, trim(stdout.String()), trim(stderr.String()))
	}
	return stdout.String(), nil
}

func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

func killGroup(p *os.Process, sig syscall.Signal) error {
	if p == nil {
		return nil
	}
	// Negative pid: the whole process group (we always set Setpgid).
	if err := syscall.Kill(-p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// daemon is a long-running child process (containerd or dockerd).
type daemon struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error
	once    sync.Once
}

func startDaemon(name, logPath string, env []string, bin string, args ...string) (*daemon, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	// Own process group so we can kill the daemon and everything it spawned;
	// Pdeathsig so that it dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = lf
	cmd.Stderr = lf
	if env != nil {
		cmd.Env = env
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, logPath: logPath, logFile: lf, done: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the daemon's process group, waits up to grace, then
// SIGKILLs the group.
func (d *daemon) stop(grace time.Duration) {
	d.once.Do(func() {
		if !d.exited() {
			_ = killGroup(d.cmd.Process, syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(grace):
			}
		}
		// Kill any leftovers in the group (shims, helpers), even if the
		// leader already exited.
		_ = killGroup(d.cmd.Process, syscall.SIGKILL)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
		}
		d.logFile.Close()
	})
}

// waitReady polls probe until it succeeds, the daemon exits or the timeout expires.
func (d *daemon) waitReady(timeout time.Duration, probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if d.exited() {
			return fmt.Errorf("%s exited early: %v\n%s", d.name, d.waitErr, tailFile(d.logPath, 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last = probe(ctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v\n%s", d.name, timeout, last, tailFile(d.logPath, 40))
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", len(lines), path, strings.Join(lines, "\n"))
}

// shortTempDir makes a directory directly under /tmp (unix socket paths must
// stay below 108 bytes, and t.TempDir() paths can be long). It is removed in
// t.Cleanup after unmounting anything left below it.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := makeOwnedDir(prefix)
	if err != nil {
		t.Fatalf("mkdtemp: %v", err)
	}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup %s: %v", dir, err)
		}
	})
	return dir
}

const ownedDirPrefix = "/tmp/berth-"

// makeOwnedDir creates /tmp/berth-<prefix><random> holding a ".owner" file
// with our PID, so that sweepStaleDirs can remove it if this process dies
// without running its cleanups (e.g. killed by the go test timeout).
func makeOwnedDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("/tmp", strings.TrimPrefix(ownedDirPrefix, "/tmp/")+prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepStaleDirs removes /tmp/berth-* dirs made by makeOwnedDir whose owner
// process no longer exists. Dirs without a readable .owner are left alone.
func sweepStaleDirs() {
	dirs, _ := filepath.Glob(ownedDirPrefix + "*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ".owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // still alive
		}
		os.RemoveAll(d)
	}
}

// unmountUnder lazily unmounts every mount point at or below dir (deepest first).
func unmountUnder(t testing.TB, dir string) {
	dir = filepath.Clean(dir)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			t.Logf("unmount %s: %v", mp, err)
		}
	}
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// debPackage names the Debian package that installs a client binary, or "".
func debPackage(name string) string {
	switch name {
	case "dockerd", "docker":
		return "docker.io"
	case "containerd", "ctr":
		return "containerd"
	case "skopeo", "iptables", "chromium":
		return name
	case "systemd-analyze":
		return "systemd"
	}
	return ""
}

// LookBin finds a binary the tests drive or fails the test with the command
// that installs it.
func LookBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Programs go install puts in GOPATH/bin, which may not be in PATH.
		if out, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			gp := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
			if _, serr := os.Stat(gp); serr == nil {
				return gp
			}
		}
		fix := "sudo scripts/install-test-deps"
		if pkg := debPackage(name); pkg != "" {
			fix = "sudo apt-get install -y " + pkg + ", or " + fix
		}
		t.Fatalf("%s not found in PATH: install it with `%s` (or opt out of the end-to-end tests with make test-unit or BERTH_E2E=0)", name, fix)
	}
	return p
}
