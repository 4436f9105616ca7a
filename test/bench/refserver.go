package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The reference servers run in a child process of the harness (the same
// executable, re-run with childEnv set), so that they, like Berth, have a
// process and a Go runtime of their own and do not share the client's.
//
//   - upstream: a minimal read-only registry serving /v2/, manifests (by tag
//     and digest) and blobs from files with http.ServeContent, counting the
//     requests it sees. It is Berth's upstream and the "upstream served
//     directly" reference.
//   - files: a plain http.ServeFile server (sendfile) over the same files,
//     and the sealed reference of scenario 14 (sealedref.go).
const childEnv = "BERTH_BENCH_REFSERVER"

// childMain runs the reference servers when the process was started as the
// child; it reports whether it did.
func childMain() bool {
	dir := os.Getenv(childEnv)
	if dir == "" {
		return false
	}
	if err := runRefServer(dir); err != nil {
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

type upstreamHandler struct {
	blobs     map[string]string
	byTag     map[string]*manifestEntry // repo:tag
	byDigest  map[string]*manifestEntry
	mu        sync.Mutex
	counts    map[string]int
	blobsByID map[string]int // GET blobs per digest
}

func runRefServer(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return err
	}
	var idx refIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return err
	}
	u := &upstreamHandler{blobs: idx.Blobs, byTag: map[string]*manifestEntry{}, byDigest: map[string]*manifestEntry{},
		counts: map[string]int{}, blobsByID: map[string]int{}}
	for i := range idx.Manifests {
		m := &idx.Manifests[i]
		u.byTag[m.Repo+":"+m.Tag] = m
		u.byDigest[m.Digest] = m
	}
	var uh http.Handler = u
	if rate := os.Getenv(paceEnv); rate != "" {
		if uh, err = pacedHandler(u, rate); err != nil { // scenarios_coldfill.go
			return err
		}
	}
	files := http.NewServeMux()
	files.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/files/")
		if name == "" || strings.ContainsAny(name, "/.") {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(dir, "blobs", name))
	})
	files.HandleFunc("/sealed/", sealedHandler(dir)) // sealedref.go
	lu, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	lf, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	for _, s := range []struct {
		l net.Listener
		h http.Handler
	}{{lu, uh}, {lf, files}} {
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { errc <- srv.Serve(s.l) }()
	}
	fmt.Printf("READY %s %s\n", lu.Addr(), lf.Addr())
	// The parent holds our stdin open; its end (or death) stops us.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		errc <- nil
	}()
	return <-errc
}

func kindOf(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifests"
	case strings.Contains(path, "/blobs/"):
		return "blobs"
	}
	return "base"
}

func (u *upstreamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch p {
	case "/_stats":
		u.mu.Lock()
		b, _ := json.Marshal(map[string]any{"counts": u.counts, "blobGets": u.blobsByID})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	case "/_reset":
		u.mu.Lock()
		u.counts, u.blobsByID = map[string]int{}, map[string]int{}
		u.mu.Unlock()
		return
	}
	kind := kindOf(p)
	u.mu.Lock()
	u.counts[r.Method+" "+kind]++
	u.counts["total"]++
	if kind == "blobs" && r.Method == http.MethodGet {
		u.blobsByID[p[strings.LastIndex(p, "/")+1:]]++
	}
	u.mu.Unlock()
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, `{"errors":[{"code":"UNSUPPORTED"}]}`, http.StatusMethodNotAllowed)
		return
	}
	switch kind {
	case "base":
		if p != "/v2/" && p != "/v2" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
	case "manifests":
		i := strings.Index(p, "/manifests/")
		repo, ref := strings.TrimPrefix(p[:i], "/v2/"), p[i+len("/manifests/"):]
		m := u.byDigest[ref]
		if m == nil {
			m = u.byTag[repo+":"+ref]
		}
		if m == nil || m.Repo != repo {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", m.MediaType)
		h.Set("Docker-Content-Digest", m.Digest)
		h.Set("Etag", `"`+m.Digest+`"`)
		h.Set("Content-Length", strconv.Itoa(len(m.Body)))
		if r.Method == http.MethodGet {
			w.Write(m.Body)
		}
	case "blobs":
		d := p[strings.LastIndex(p, "/")+1:]
		path, ok := u.blobs[d]
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", d)
		http.ServeContent(w, r, "", time.Time{}, f)
	}
}

// refServer is the running child, seen from the harness.
type refServer struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	Upstream string // http://host:port
	Files    string // http://host:port
	done     chan struct{}
}

// startRefServer starts the child; env is added to its environment.
func startRefServer(ctx context.Context, dir string, env ...string) (*refServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), childEnv+"="+dir), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	rs := &refServer{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(rs.done) }()
	select {
	case l, ok := <-line:
		f := strings.Fields(l)
		if !ok || len(f) != 3 || f[0] != "READY" {
			rs.Stop()
			return nil, fmt.Errorf("reference server did not start (said %q)", l)
		}
		rs.Upstream, rs.Files = "http://"+f[1], "http://"+f[2]
	case <-time.After(20 * time.Second):
		rs.Stop()
		return nil, errors.New("reference server did not start within 20s")
	case <-ctx.Done():
		rs.Stop()
		return nil, ctx.Err()
	}
	return rs, nil
}

func (rs *refServer) Stop() {
	rs.stdin.Close()
	select {
	case <-rs.done:
	case <-time.After(5 * time.Second):
		rs.cmd.Process.Kill()
		<-rs.done
	}
}

func (rs *refServer) Pid() int { return rs.cmd.Process.Pid }

type upstreamStats struct {
	Counts   map[string]int `json:"counts"`
	BlobGets map[string]int `json:"blobGets"`
}

func (rs *refServer) Stats(ctx context.Context) (upstreamStats, error) {
	var st upstreamStats
	err := getJSON(ctx, rs.Upstream+"/_stats", &st)
	return st, err
}

func (rs *refServer) Reset(ctx context.Context) error {
	var v any
	return getJSON(ctx, rs.Upstream+"/_reset", &v)
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}
