//go:build soak

// Package soak is Berth's soak test, run by `make soak` and never by `make
// test` (the build tag keeps it out): a real node in process, under -race,
// in front of a real upstream that fails now and then (503s, bodies that
// are no manifest, blobs cut short), for SOAK_DURATION (default 2m) of
// concurrent pushes, pulls through the cache and from local repositories,
// deletes, garbage collection, eviction under a small cache.maxBytes, and
// config reloads. Every blob served must verify against its digest and every
// manifest against its digest; no request may crash or answer 500; the
// node must stop clean. Every loop ends at the deadline, every request has
// a timeout.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/node"
	"berth/test/testport"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// soak is one run: the node's addresses, the upstream, what was pushed,
// and what was seen.
type soak struct {
	t        *testing.T
	reg      string // the registry's base URL
	admin    string // the admin listener's base URL
	up       *testreg.Registry
	cfgPath  string
	cfgArgs  []any
	deadline time.Time
	client   *http.Client

	mu       sync.Mutex
	local    []image // pushed to local repositories and not deleted
	deleted  []image // deleted from local repositories, the last 32
	cached   []image // in the upstream, pulled through hub/
	outcomes map[string]int
	failures []string
}

// image is a repository and a reference (tag or digest) in it.
type image struct{ repo, ref string }

// duration is SOAK_DURATION, 2 minutes by default.
func duration(t *testing.T) time.Duration {
	d := 2 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("SOAK_DURATION=%q is not a positive duration such as 2m", v)
		}
	}
	return d
}

// configTemplate is the node's config: a small store so eviction runs,
// frequent GC and eviction, short TTLs so tags revalidate, no rate limit
// (every client is 127.0.0.1). Reloads alternate the %d (cache.maxBytes)
// and %s (the TTL).
const configTemplate = `listen: %q
dataDir: %q
admin: {listen: %q}
rateLimit: {disabled: true}
upstreams:
  - {name: hub, prefix: hub, url: %q, ttl: %s}
cache: {maxBytes: %d, evictInterval: 1s}
local:
  prefixes: [private]
  gcInterval: 3s
  gcGrace: 10s
  uploadTimeout: 30s
  maxOpenUploads: 64
`

// writeConfig writes the config with cache.maxBytes and the upstream TTL.
func (s *soak) writeConfig(maxBytes int64, ttl string) {
	args := append(append([]any(nil), s.cfgArgs...), ttl, maxBytes)
	body := fmt.Sprintf(configTemplate, args...)
	if err := os.WriteFile(s.cfgPath, []byte(body), 0o600); err != nil {
		s.fail("write config: %v", err)
	}
}

// outcome counts one thing that happened.
func (s *soak) outcome(what string) {
	s.mu.Lock()
	s.outcomes[what]++
	s.mu.Unlock()
}

// fail records a broken promise; the test fails at the end with all of them.
func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes["FAILURE"]++
	if len(s.failures) < 50 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

// running reports whether the soak goes on.
func (s *soak) running() bool { return time.Now().Before(s.deadline) }

// every runs f every period until the deadline.
func (s *soak) every(period time.Duration, f func(i int)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 0; s.running(); i++ {
		f(i)
		<-tick.C
	}
}

func TestSoak(t *testing.T) {
	d := duration(t)
	dir := t.TempDir()
	regAddr, adminAddr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	s := &soak{t: t, reg: "http://" + regAddr, admin: "http://" + adminAddr, up: testreg.Start(t),
		cfgPath: filepath.Join(dir, "berth.yaml"), outcomes: map[string]int{},
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	s.cfgArgs = []any{regAddr, filepath.Join(dir, "data"), adminAddr, s.up.URL}
	s.writeConfig(8<<20, "1s")
	s.seedUpstream()

	cfg, err := node.LoadConfig(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.ErrorLevel)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- node.Serve(ctx, cfg, node.Options{Logger: zap.New(core)}) }()
	s.waitReady(served)

	s.deadline = time.Now().Add(d)
	t.Logf("soaking for %s", d)
	var wg sync.WaitGroup
	for name, worker := range s.workers() {
		wg.Add(1)
		go func() { defer wg.Done(); worker(); s.outcome("worker done: " + name) }()
	}
	wg.Wait()
	s.checkReload()
	s.checkEvictions()

	stop()
	select {
	case err := <-served:
		if err != nil {
			s.fail("the node did not stop clean: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the node did not stop within a minute of its context ending")
	}
	s.checkAudit(filepath.Join(dir, "data", "audit"))
	s.report(logs)
}

// waitReady waits (bounded) until the registry answers /v2/.
func (s *soak) waitReady(served <-chan error) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := s.client.Get(s.reg + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-served:
			s.t.Fatalf("the node stopped while starting: %v", err)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the node did not answer /v2/ within 30s")
		}
	}
}

// workers are the concurrent loops of the soak, by name. The pushers
// share a base layer; two push to the same repository.
func (s *soak) workers() map[string]func() {
	base, err := random.Layer(96<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		s.t.Fatal(err)
	}
	return map[string]func(){
		"push 1":          func() { s.pushLoop("private/soak-1", base) },
		"push 2":          func() { s.pushLoop("private/soak-2", base) },
		"push 3":          func() { s.pushLoop("private/soak-1", base) },
		"pull local 1":    s.pullLocalLoop,
		"pull local 2":    s.pullLocalLoop,
		"pull cached 1":   s.pullCachedLoop,
		"pull cached 2":   s.pullCachedLoop,
		"pull cached 3":   s.pullCachedLoop,
		"delete":          func() { s.every(700*time.Millisecond, func(int) { s.deleteOldest() }) },
		"gc":              func() { s.every(2*time.Second, func(int) { s.gc() }) },
		"reload":          func() { s.every(3*time.Second, s.reload) },
		"upstream writer": func() { s.every(time.Second, s.pushUpstream) },
	}
}

// reload alternates cache.maxBytes and the TTL and sends SIGHUP, which
// node.Serve answers with a reload.
func (s *soak) reload(i int) {
	if i%2 == 0 {
		s.writeConfig(16<<20, "2s")
	} else {
		s.writeConfig(8<<20, "1s")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		s.fail("SIGHUP: %v", err)
	}
	s.outcome("reload")
}

// checkReload asks the admin listener how the last reload went.
func (s *soak) checkReload() {
	resp, err := s.client.Get(s.admin + "/config")
	if err != nil {
		s.fail("GET /config: %v", err)
		return
	}
	defer resp.Body.Close()
	var st struct {
		LastReload *struct {
			Successful bool
			Error      string
		} `json:"lastReload"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.LastReload == nil || !st.LastReload.Successful {
		s.fail("the last reload did not succeed: %+v %v", st.LastReload, err)
	}
}

// checkEvictions asks the admin API whether eviction ran: the soak is
// meant to fill the small store.
func (s *soak) checkEvictions() {
	resp, err := s.client.Post(s.admin+"/admin/v1/describe-cache", "application/json", strings.NewReader("{}"))
	if err != nil {
		s.fail("describe-cache: %v", err)
		return
	}
	defer resp.Body.Close()
	var dc struct {
		Store     struct{ Bytes, Blobs int64 }
		Evictions *struct{ Blobs int64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&dc); err != nil {
		s.fail("describe-cache: %v", err)
		return
	}
	s.mu.Lock()
	s.outcomes["store bytes at the end"] = int(dc.Store.Bytes)
	if dc.Evictions != nil {
		s.outcomes["blobs evicted"] = int(dc.Evictions.Blobs)
	}
	s.mu.Unlock()
	if dc.Evictions == nil || dc.Evictions.Blobs == 0 {
		s.fail("nothing was evicted: the soak did not exercise eviction")
	}
}

// checkAudit reads the audit log the node wrote: no request may have
// crashed.
func (s *soak) checkAudit(dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "audit.log*"))
	if err != nil || len(files) == 0 {
		s.fail("no audit log in %s: %v", dir, err)
		return
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			s.fail("read the audit log: %v", err)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var e struct{ Action, Repository, Reference, Result string }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				s.fail("audit line %q: %v", line, err)
				continue
			}
			s.outcome("audit events")
			if e.Result == "crashed" {
				s.fail("the audit log records a crashed request: %s %s %s", e.Action, e.Repository, e.Reference)
			}
		}
	}
}

// report logs what happened and fails the test on every broken promise and
// on every error the node logged as a crash.
func (s *soak) report(logs *observer.ObservedLogs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.outcomes))
	for k := range s.outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-48s %d\n", k, s.outcomes[k])
	}
	s.t.Logf("outcomes:\n%s", b.String())
	for _, e := range logs.All() {
		s.t.Logf("node logged %s: %s %v", e.Level, e.Message, e.ContextMap())
		if strings.Contains(e.Message, "crashed") || e.Level > zapcore.ErrorLevel {
			s.failures = append(s.failures, "the node logged "+e.Message)
		}
	}
	for _, f := range s.failures {
		s.t.Error(f)
	}
}
