package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/test/testport"

	"golang.org/x/crypto/bcrypt"
)

// The berth binary, built once for the suite.
var (
	buildOnce sync.Once
	berthBin  string
	buildErr  error
)

func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-security-")
		if err != nil {
			buildErr = err
			return
		}
		berthBin = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", berthBin, "./cmd/berth")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return berthBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if berthBin != "" {
		os.RemoveAll(filepath.Dir(berthBin))
	}
	os.Exit(code)
}

// node is a running berth process.
type node struct {
	URL string
	// Admin is the admin listener's URL.
	Admin string
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	log   bytes.Buffer
}

func (n *node) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.Write(p)
}

// startBerth runs berth with config (listen, dataDir and an admin listener
// are added) until it answers /v2/, and stops it when the test ends.
func startBerth(t *testing.T, config string) *node { return startBerthIn(t, t.TempDir(), config) }

// startBerthIn is startBerth with the data directory dir.
func startBerthIn(t *testing.T, dir, config string) *node {
	t.Helper()
	addr, adminAddr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	body := fmt.Sprintf("listen: %q\ndataDir: %q\nadmin:\n  listen: %q\n", addr, dir, adminAddr) + config
	cfg := writeFile(t, "config.yaml", body)
	n := &node{URL: "http://" + addr, Admin: "http://" + adminAddr, done: make(chan struct{})}
	n.cmd = exec.Command(binary(t), "serve", "--config", cfg)
	n.cmd.Stdout, n.cmd.Stderr = n, n
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("berth log:\n%s", n.logText())
		}
	})
	eventually(t, 20*time.Second, "berth answers /v2/", func() bool {
		select {
		case <-n.done:
			t.Fatalf("berth exited during start:\n%s", n.logText())
		default:
		}
		st, _ := n.do(t, http.MethodGet, "/v2/", "", nil)
		return st == http.StatusUnauthorized || st == http.StatusOK
	})
	return n
}

func (n *node) logText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// reload sends SIGHUP.
func (n *node) reload(t *testing.T) {
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// do sends one request with the Authorization header auth ("" none) and
// returns the status and body. A failed connection is status 0.
func (n *node) do(t *testing.T, method, path, auth string, hdr http.Header) (int, []byte) {
	t.Helper()
	st, _, body := n.send(t, method, path, auth, hdr)
	return st, body
}

// send is do returning the answer's headers too; path may be a Location
// the node answered.
func (n *node) send(t *testing.T, method, path, auth string, hdr http.Header) (int, http.Header, []byte) {
	t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = n.URL + path
	}
	req, err := http.NewRequest(method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, body
}

// token asks berth's token endpoint for a token with Basic user:pass
// (anonymous when user is empty) and the query q; it returns the status
// and the token.
func (n *node) token(t *testing.T, user, pass string, q url.Values) (int, string) {
	t.Helper()
	q.Set("service", "berth")
	auth := ""
	if user != "" {
		auth = basic(user, pass)
	}
	st, body := n.do(t, http.MethodGet, "/token?"+q.Encode(), auth, nil)
	var tok struct {
		Token string `json:"token"`
	}
	if st == http.StatusOK {
		if err := json.Unmarshal(body, &tok); err != nil {
			t.Fatalf("token body %q: %v", body, err)
		}
	}
	return st, tok.Token
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no %s within %s", what, d)
		}
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// htpasswd is the bcrypt htpasswd text for user:password pairs.
func htpasswd(t *testing.T, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range pairs {
		user, pass, _ := strings.Cut(p, ":")
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", user, h)
	}
	return b.String()
}
