package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/admin"
	"berth/errdefs"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/bcrypt"
)

// reloadEnv is an in-process node whose config file the test rewrites and
// reloads, with its registry and admin handlers served on loopback.
type reloadEnv struct {
	t          *testing.T
	dir, path  string
	n          *Node
	reg, admin *httptest.Server
	upA, upB   *testreg.Registry
}

func newReloadEnv(t *testing.T, first string) *reloadEnv {
	e := &reloadEnv{t: t, dir: t.TempDir(), upA: testreg.Start(t), upB: testreg.Start(t)}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.upA.Push(t, "lib/app", "v1", img)
	e.upB.Push(t, "lib/app", "v1", img)
	e.path = filepath.Join(e.dir, "berth.yaml")
	e.write(first)
	cfg, err := LoadConfig(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if e.n, err = New(context.Background(), cfg, Options{Logger: zaptest.NewLogger(t)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.n.Close)
	e.reg = httptest.NewServer(e.n.Handler())
	e.admin = httptest.NewServer(e.n.AdminHandler())
	t.Cleanup(e.reg.Close)
	t.Cleanup(e.admin.Close)
	return e
}

// write puts a config in the file: the common part, then extra.
func (e *reloadEnv) write(extra string) {
	e.t.Helper()
	base := fmt.Sprintf("dataDir: %q\nadmin: {listen: \"127.0.0.1:0\", pprof: true}\n", filepath.Join(e.dir, "data"))
	r := strings.NewReplacer("UP_A", e.upA.URL, "UP_B", e.upB.URL, "DIR", e.dir)
	if err := os.WriteFile(e.path, []byte(base+r.Replace(extra)), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// htpasswd writes DIR/htpasswd for "name:password" users.
func (e *reloadEnv) htpasswd(users ...string) {
	e.t.Helper()
	writeHtpasswd(e.t, filepath.Join(e.dir, "htpasswd"), users...)
}

// writeHtpasswd writes an htpasswd file (bcrypt) for "name:password" users.
func writeHtpasswd(t *testing.T, path string, users ...string) {
	t.Helper()
	var lines []string
	for _, u := range users {
		name, pw, _ := strings.Cut(u, ":")
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, name+":"+string(h))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *reloadEnv) reload() error { return e.n.Reload(context.Background()) }

// apply writes a config and reloads it, which must succeed.
func (e *reloadEnv) apply(extra string) {
	e.t.Helper()
	e.write(extra)
	if err := e.reload(); err != nil {
		e.t.Fatal(err)
	}
}

// get is a registry GET; user "name:password" sends Basic credentials.
func (e *reloadEnv) get(path, user string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.reg.URL+path, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	if name, pw, ok := strings.Cut(user, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	return e.do(req, nil)
}

// adminOp posts an admin API verb; user as for get.
func (e *reloadEnv) adminOp(verb, user string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.admin.URL+admin.Prefix+verb, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	if name, pw, ok := strings.Cut(user, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	return e.do(req, out)
}

func (e *reloadEnv) do(req *http.Request, out any) int {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			e.t.Fatalf("%s: %v in %s", req.URL, err, body)
		}
	}
	return resp.StatusCode
}

func (e *reloadEnv) rulePrefixes() []string {
	e.t.Helper()
	var out admin.DescribePullThroughCacheRulesResponse
	if st := e.adminOp("describe-pull-through-cache-rules", "", &out); st != http.StatusOK {
		e.t.Fatalf("describe-pull-through-cache-rules: status %d", st)
	}
	var ps []string
	for _, r := range out.PullThroughCacheRules {
		ps = append(ps, r.EcrRepositoryPrefix)
	}
	return ps
}

func (e *reloadEnv) configStatus(user string) (hash string, ok bool) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.admin.URL+"/config", nil)
	if name, pw, found := strings.Cut(user, ":"); found {
		req.SetBasicAuth(name, pw)
	}
	var st struct {
		Hash       string
		LastReload struct{ Successful bool }
	}
	if code := e.do(req, &st); code != http.StatusOK {
		e.t.Fatalf("/config: status %d", code)
	}
	return st.Hash, st.LastReload.Successful
}

func fileHash(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A reload reaches every part of the node: the registry's routing, guard
// and token endpoint, the admin API's routing and guard, capacity and the
// limiter all act on the new file; a broken file changes nothing and says
// so.
func TestReloadReachesEveryPart(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]
rateLimit: {requestsPerSecond: 1000, burst: 2000}
`)
	if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("pull through a: %d", st)
	}
	if got := e.rulePrefixes(); strings.Join(got, ",") != "a" {
		t.Fatalf("rules before the reload: %v", got)
	}

	// Upstream b replaces a; auth on with alice in group ops as the admin
	// group; anonymous clients get a burst of 3; the store is capped.
	e.htpasswd("alice:alice-pw", "bob:bob-pw")
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
rateLimit: {requestsPerSecond: 0.0001, burst: 3, users: {alice: {requestsPerSecond: 1000, burst: 1000}}}
cache: {maxBytes: 1048576}
auth:
  enabled: true
  htpasswd: DIR/htpasswd
  groups: {ops: [alice]}
  adminGroup: ops
  anonymous: {cached: []}
`)
	if h, ok := e.configStatus("alice:alice-pw"); h != fileHash(t, e.path) || !ok {
		t.Fatalf("/config after the reload: hash %s ok %v, want %s true", h, ok, fileHash(t, e.path))
	}
	if st := e.get("/v2/b/lib/app/manifests/v1", "alice:alice-pw"); st != http.StatusOK {
		t.Fatalf("alice pulls through b: %d", st)
	}
	if st := e.get("/v2/a/lib/app/manifests/v1", "alice:alice-pw"); st != http.StatusNotFound {
		t.Fatalf("a was removed, yet /v2/a/... answers %d", st)
	}
	if st := e.adminOp("describe-repositories", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("admin API without credentials after auth was turned on: %d, want 401", st)
	}
	if st := e.adminOp("describe-repositories", "bob:bob-pw", nil); st != http.StatusForbidden {
		t.Fatalf("admin API for bob (not in ops): %d, want 403", st)
	}
	var rules admin.DescribePullThroughCacheRulesResponse
	if st := e.adminOp("describe-pull-through-cache-rules", "alice:alice-pw", &rules); st != http.StatusOK ||
		len(rules.PullThroughCacheRules) != 1 || rules.PullThroughCacheRules[0].EcrRepositoryPrefix != "b" {
		t.Fatalf("admin rules after the reload: %d %+v", st, rules)
	}
	if err := e.n.cap.Reserve(context.Background(), 2<<20); !errors.Is(err, errdefs.ErrStoreFull) {
		t.Fatalf("a 2 MiB fill under the reloaded 1 MiB cap: %v, want the store full", err)
	}
	// The anonymous burst of 3 (the 401s spend it too), then 429.
	for i := 0; i < 3; i++ {
		if st := e.get("/v2/b/lib/app/manifests/v1", ""); st != http.StatusUnauthorized {
			t.Fatalf("anonymous request %d: %d, want 401", i, st)
		}
	}
	if st := e.get("/v2/b/lib/app/manifests/v1", ""); st != http.StatusTooManyRequests {
		t.Fatalf("anonymous request past the burst: %d, want 429", st)
	}

	// New passwords and groups, another admin group, the same limits: the
	// anonymous bucket stays empty across the reload.
	e.htpasswd("alice:new-pw", "bob:bob-pw")
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
rateLimit: {requestsPerSecond: 0.0001, burst: 3, users: {alice: {requestsPerSecond: 1000, burst: 1000}, bob: {requestsPerSecond: 1000, burst: 1000}}}
cache: {maxBytes: 1048576}
auth:
  enabled: true
  htpasswd: DIR/htpasswd
  groups: {ops: [alice], admins: [bob]}
  adminGroup: admins
  anonymous: {cached: []}
`)
	if st := e.adminOp("describe-repositories", "alice:alice-pw", nil); st != http.StatusUnauthorized {
		t.Fatalf("alice's old password on the admin API: %d, want 401", st)
	}
	if st := e.adminOp("describe-repositories", "alice:new-pw", nil); st != http.StatusForbidden {
		t.Fatalf("alice, no longer in the admin group: %d, want 403", st)
	}
	if st := e.adminOp("describe-repositories", "bob:bob-pw", nil); st != http.StatusOK {
		t.Fatalf("bob, now in the admin group: %d, want 200", st)
	}
	if st := e.get("/v2/b/lib/app/manifests/v1", ""); st != http.StatusTooManyRequests {
		t.Fatalf("anonymous bucket after a reload with the same limits: %d, want 429 (refilled?)", st)
	}
	good := fileHash(t, e.path)

	// A broken file: nothing changes, and the refusal shows.
	e.write("cache: {maxBytes: lots}\nauth: {enabled: false}\n")
	if err := e.reload(); err == nil || !strings.Contains(err.Error(), "cache.maxBytes") {
		t.Fatalf("reload of a broken file: %v, want an error naming cache.maxBytes", err)
	}
	if h, ok := e.configStatus("bob:bob-pw"); h != good || ok {
		t.Fatalf("/config after a refused reload: hash %s ok %v, want %s false", h, ok, good)
	}
	if st := e.adminOp("describe-repositories", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("auth after a refused reload that turned it off: %d, want 401", st)
	}
	if got := metricValue(t, e, "berth_config_last_reload_successful"); got != "0" {
		t.Fatalf("berth_config_last_reload_successful = %s, want 0", got)
	}

	// Auth and rate limits off again: the admin API and pulls are open.
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
rateLimit: {disabled: true}
`)
	if st := e.adminOp("describe-repositories", "", nil); st != http.StatusOK {
		t.Fatalf("admin API after auth was turned off: %d, want 200", st)
	}
	if st := e.get("/v2/b/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Fatalf("anonymous pull with auth and limits off: %d, want 200", st)
	}
	if got := metricValue(t, e, "berth_config_last_reload_successful"); got != "1" {
		t.Fatalf("berth_config_last_reload_successful = %s, want 1", got)
	}
}

// metricValue reads one unlabelled sample from the admin listener.
func metricValue(t *testing.T, e *reloadEnv, name string) string {
	t.Helper()
	resp, err := http.Get(e.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return ""
}
