package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/test/testport"
)

var (
	buildOnce sync.Once
	berthBin  string
	buildErr  error
)

// repoRoot is the module's root directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// binary builds cmd/berth once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root := repoRoot()
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			buildErr = err
			return
		}
		berthBin = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", berthBin, "./cmd/berth")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return berthBin
}

// removeBinary deletes the binary built by binary, once the tests are done.
func removeBinary() {
	if berthBin != "" {
		os.RemoveAll(filepath.Dir(berthBin))
	}
}

// Berth is a berth process under test.
type Berth struct {
	t    testing.TB
	Addr string // host:port
	// Listen is the config's listen address: Addr, unless an option of
	// StartBerth sets another (e.g. every address, at Addr's port).
	Listen string
	URL    string
	// AdminURL is the admin listener (metrics, health, admin API).
	AdminURL string
	DataDir  string
	Config   string
	Env      []string // extra environment for the process
	// Credential, when set, runs the process with these ids (a group the
	// partition tests' iptables rules match); restarts keep it.
	Credential *syscall.Credential
	cmd        *exec.Cmd
	log        *bytes.Buffer
	logMu      *sync.Mutex
	logChanged chan struct{} // closed and replaced on every write to log
	done       chan struct{}
}

// StartBerth writes a config (listen and dataDir are filled in) and starts
// berth serve with it, waiting until /v2/ answers.
func StartBerth(t testing.TB, dataDir, configBody string, opts ...func(*Berth)) *Berth {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	b := &Berth{t: t, Addr: addr, Listen: addr, URL: "http://" + addr, AdminURL: "http://" + admin, DataDir: dataDir, Config: cfg}
	for _, o := range opts {
		o(b)
	}
	body := fmt.Sprintf("listen: %q\ndataDir: %q\nlog:\n  format: json\n  level: info\n", b.Listen, dataDir) + configBody
	if !strings.Contains(configBody, "admin:") {
		body += fmt.Sprintf("admin:\n  listen: %q\n", admin)
	}
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

type lockedWriter struct {
	mu      *sync.Mutex
	b       *bytes.Buffer
	changed *chan struct{} // closed and replaced after every write
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	close(*w.changed)
	*w.changed = make(chan struct{})
	return n, err
}

func (b *Berth) start() {
	b.t.Helper()
	b.log, b.logMu, b.logChanged = &bytes.Buffer{}, &sync.Mutex{}, make(chan struct{})
	b.cmd = exec.Command(binary(b.t), "serve", "--config", b.Config)
	w := lockedWriter{b.logMu, b.log, &b.logChanged}
	b.cmd.Stdout, b.cmd.Stderr = w, w
	b.cmd.Env = append(os.Environ(), b.Env...)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: b.Credential}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.done = make(chan struct{})
	go func() { b.cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(b.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 200, or with auth on a 401 with the token challenge.
			if resp.StatusCode == 200 || resp.StatusCode == http.StatusUnauthorized &&
				strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				return
			}
		}
		select {
		case <-b.done:
			b.t.Fatalf("berth exited during start:\n%s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("berth did not answer within 20s:\n%s", b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what berth wrote so far.
func (b *Berth) Log() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return b.log.String()
}

// WaitLog waits until cond holds of what berth logged since it started,
// checking again each time berth writes to its log (the node's own
// signal, not a timer); it fails the test after d or if berth exits.
func (b *Berth) WaitLog(what string, d time.Duration, cond func(log string) bool) {
	b.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		b.logMu.Lock()
		log, changed := b.log.String(), b.logChanged
		b.logMu.Unlock()
		if cond(log) {
			return
		}
		select {
		case <-changed:
		case <-b.done:
			b.t.Fatalf("berth exited before %s:\n%s", what, lastLines(b.Log(), 20))
		case <-deadline.C:
			b.t.Fatalf("%s: not within %s:\n%s", what, d, lastLines(b.Log(), 20))
		}
	}
}

// Kill sends SIGKILL and waits for the process to die.
func (b *Berth) Kill() {
	if b.cmd.Process != nil {
		b.cmd.Process.Kill()
		<-b.done
	}
}

// Restart starts berth again on the same address, config and data.
func (b *Berth) Restart() {
	b.Stop()
	b.start()
}

// Stop sends SIGTERM and waits (then kills after 15 s).
func (b *Berth) Stop() {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		b.Kill()
	}
	if b.t.Failed() {
		b.t.Logf("berth log:\n%s", lastLines(b.Log(), 60))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Do sends a request without a body or credentials to path on berth.
func (b *Berth) Do(ctx context.Context, method, path string, hdr http.Header) (*http.Response, error) {
	return send(ctx, nil, method, b.URL+path, cred{}, hdr, nil)
}

// upstreamConfig is a config fragment with one upstream rule.
func upstreamConfig(name, prefix, registry, url string, def bool, extra string) string {
	return fmt.Sprintf("  - name: %s\n    prefix: %s\n    registry: %s\n    url: %s\n    default: %v\n%s", name, prefix, registry, url, def, extra)
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
