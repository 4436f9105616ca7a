package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// buildBerth builds cmd/berth from the module at root into dir.
func buildBerth(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "berth")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berth: %v\n%s", err, out)
	}
	return bin, nil
}

// adminSupported asks the binary whether its config knows admin.pprof.
func adminSupported(ctx context.Context, bin, dir string) bool {
	cfg := filepath.Join(dir, "probe.yaml")
	body := "listen: \"127.0.0.1:1\"\ndataDir: \"" + dir + "\"\nadmin:\n  listen: \"127.0.0.1:2\"\n  pprof: true\n"
	if os.WriteFile(cfg, []byte(body), 0o644) != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, bin, "check-config", "--config", cfg).Run() == nil
}

// berthProc is one server process (berth serve, or Distribution for
// scenario 10) with a data directory of its own.
type berthProc struct {
	URL      string
	AdminURL string // "" without an admin listener
	DataDir  string
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type berthOpts struct {
	admin    bool // the binary knows the admin key: give it a free port
	pprof    bool
	logLevel string // "" is warn
	extra    string // more top-level config (the cluster block)
	dataDir  string // serve this data directory instead of a new one
}

// startBerth writes a config (rate limit off, log level warn unless o says
// otherwise, the reference upstream as the default rule, then o.extra) and
// starts berth serve with it.
func (h *harness) startBerth(ctx context.Context, o berthOpts) (*berthProc, error) {
	b, dir, port, err := h.newProc("berth")
	if err != nil {
		return nil, err
	}
	if o.dataDir != "" {
		b.DataDir = o.dataDir
	}
	level := o.logLevel
	if level == "" {
		level = "warn"
	}
	cfg := fmt.Sprintf(`listen: "127.0.0.1:%d"
dataDir: %q
log:
  format: json
  level: %s
rateLimit:
  disabled: true
upstreams:
  - name: bench
    prefix: up
    registry: bench.invalid
    url: %s
    default: true
`, port, b.DataDir, level, h.ref.Upstream) + o.extra
	if o.admin {
		ap, err := h.ports.take(freePort)
		if err != nil {
			return nil, err
		}
		b.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", ap)
		cfg += fmt.Sprintf("admin:\n  listen: \"127.0.0.1:%d\"\n  pprof: %v\n", ap, o.pprof)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if err := b.run(ctx, "berth", exec.Command(h.bin, "serve", "--config", cfgPath)); err != nil {
		return nil, err
	}
	return b, nil
}

// newProc makes a directory under the run's temporary one and a process
// record with a free port on 127.0.0.1, data and log paths in it.
func (h *harness) newProc(name string) (*berthProc, string, int, error) {
	dir, err := os.MkdirTemp(h.tmp, name+"-")
	if err != nil {
		return nil, "", 0, err
	}
	port, err := h.ports.take(freePort)
	if err != nil {
		return nil, "", 0, err
	}
	return &berthProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), DataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, name+".log"), done: make(chan struct{})}, dir, port, nil
}

// run starts cmd with its output in the log and waits until /v2/ answers.
func (b *berthProc) run(ctx context.Context, name string, cmd *exec.Cmd) error {
	logf, err := os.Create(b.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	b.cmd = cmd
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return err
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	return b.waitReady(ctx, name)
}

// waitReady polls /v2/ every 10 ms until it answers 200, the process exits
// or 20 s pass; on failure it stops the process.
func (b *berthProc) waitReady(ctx context.Context, name string) error {
	deadline := time.Now().Add(20 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 2000; i++ {
		resp, err := c.Get(b.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-b.done:
			return fmt.Errorf("%s exited during start:\n%s", name, b.logTail())
		case <-ctx.Done():
			b.Stop()
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			break
		}
	}
	b.Stop()
	return fmt.Errorf("%s did not answer /v2/ within 20s:\n%s", name, b.logTail())
}

func (b *berthProc) logTail() string {
	data, _ := os.ReadFile(b.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends SIGTERM, waits (kills after 15 s) and removes the data.
func (b *berthProc) Stop() {
	select {
	case <-b.done:
	default:
		b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			b.cmd.Process.Kill()
			<-b.done
		}
	}
	os.RemoveAll(b.DataDir)
}

func (b *berthProc) Pid() int { return b.cmd.Process.Pid }

// procStatusKB reads a "Key: N kB" line of /proc/<pid>/status.
func procStatusKB(pid int, key string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// peakRSS is VmHWM, the process's peak resident set, in bytes.
func peakRSS(pid int) (int64, error) {
	kb, err := procStatusKB(pid, "VmHWM")
	return kb << 10, err
}

// cpuTime is user+system CPU time of a process so far.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

var errSkipped = errors.New("skipped")

// evictFromPageCache writes path's dirty pages and drops it from the page
// cache, so that the next exec reads it in as any installed binary is read.
// A binary the linker has just written sits in the page cache in large
// folios, which the kernel maps whole, with huge pages: on this machine
// that made a freshly built Berth about 8 MB larger in RSS than the same
// binary read back from disk, and Distribution's binary, installed long
// before, did not have it. Both binaries are evicted before a run, so
// their peak RSS rows compare the processes, not the history of the
// files.
func evictFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop %s from the page cache: %w", path, err)
	}
	return nil
}
