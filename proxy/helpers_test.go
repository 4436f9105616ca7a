package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/cluster"
	"berth/metrics"
	"berth/registry"
	"berth/store"
	"berth/test/testreg"
	"berth/upstream"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

type env struct {
	up      *testreg.Registry
	store   *store.Store
	proxy   *Proxy
	berth   *httptest.Server
	clock   *fakeClock
	metrics *metrics.Metrics
	dataDir string
	// routes is the router in force; setRule swaps it, as a reload does.
	routes atomic.Pointer[upstream.Router]
	log    *zap.Logger
}

type envOpts struct {
	ttl, timeout, idle time.Duration
	// rule, when set, changes the rule before Berth starts.
	rule func(*upstream.Rule)
	// storeClock gives the store the env's clock too (pull records).
	storeClock bool
}

// newEnv starts a real upstream registry and Berth in front of it, routed
// by the prefix "up" and as the default rule.
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{up: testreg.Start(t), clock: &fakeClock{t: time.Unix(1_800_000_000, 0)}, dataDir: t.TempDir(),
		metrics: metrics.New(prometheus.NewRegistry())}
	ctx := context.Background()
	zl := zaptest.NewLogger(t)
	var err error
	so := store.Options{Logger: zl}
	if o.storeClock {
		so.Now = e.clock.Now
	}
	e.store, err = store.Open(ctx, e.dataDir, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	rule := upstream.Rule{Name: "up", Prefix: "up", Registry: "up.example", URL: e.up.URL, Default: true,
		TTL: o.ttl, Timeout: o.timeout, IdleTimeout: o.idle}
	if o.rule != nil {
		o.rule(&rule)
	}
	e.log = zl
	e.setRule(t, rule)
	e.proxy = New(e.store, e.routes.Load, Options{Logger: zl, Now: e.clock.Now, FillTimeout: time.Minute, Metrics: e.metrics})
	t.Cleanup(e.proxy.Close)
	e.berth = httptest.NewServer(registry.New(e.proxy, registry.WithLogger(zl)))
	t.Cleanup(e.berth.Close)
	return e
}

// setRule puts rule in force, as a reload of the node's config does.
func (e *env) setRule(t *testing.T, rule upstream.Rule) {
	t.Helper()
	u, err := upstream.New(rule, nil, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.routes.Store(upstream.NewRouter([]*upstream.Upstream{u}))
}

// cacheCount is berth_cache_requests_total for kind and result.
func (e *env) cacheCount(kind, result string) float64 {
	var m dto.Metric
	if err := e.metrics.Cache.WithLabelValues(kind, result).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// storeBlob commits data to the store as a verified blob (linked to no
// repository) and returns its digest.
func (e *env) storeBlob(t *testing.T, data []byte) string {
	t.Helper()
	ctx := context.Background()
	d := digestOf(data)
	w, err := e.store.NewBlobWriter(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// pushImage pushes img to the upstream as repo:tag.
func (e *env) pushImage(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	return e.up.Push(t, repo, tag, img)
}

// bigImage is an image with one layer of n deterministic bytes.
func bigImage(t *testing.T, n int, seed uint64) (v1.Image, []byte, v1.Hash) {
	t.Helper()
	data := testreg.Bytes(n, seed)
	layer := static.NewLayer(data, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layer.Digest()
	return img, data, d
}

// get does a request against Berth and returns status, headers and body.
func (e *env) do(t *testing.T, method, path string, hdr http.Header) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, e.berth.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// wantError checks an OCI error response.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	var eb struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("body %q is not an OCI error: %v", body, err)
	}
	if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		t.Fatalf("error %+v, want code %s with a message", eb.Errors[0], code)
	}
}

// clusterNode is one node of an in-process cluster: a Proxy over its own
// store, a real cluster.Cluster gossiping on 127.0.0.1, its peer API
// served behind RequirePeer, and the registry API clients pull from.
type clusterNode struct {
	name    string
	proxy   *Proxy
	cluster *cluster.Cluster
	berth   *httptest.Server
	// sent records the requests this node sent to the upstream.
	sent *sentRecorder
}

// sentRecorder is an upstream transport that records "METHOD /path" of
// every request through it.
type sentRecorder struct {
	inner http.RoundTripper
	mu    sync.Mutex
	sent  []string
}

func (r *sentRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.sent = append(r.sent, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	return r.inner.RoundTrip(req)
}

// take returns the requests recorded since the last take.
func (r *sentRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

// newCluster starts n nodes ("node0", …) in front of the upstream rule
// (with two owners per key, as a node's default), all reading the time
// from clock, and waits until every node sees all n alive with their peer
// addresses.
func newCluster(t *testing.T, n int, rule upstream.Rule, clock *fakeClock) []*clusterNode {
	t.Helper()
	// Info and above: memberlist's own lines, at Debug, may come from
	// goroutines it leaves briefly after the test.
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	nodes := make([]*clusterNode, n)
	var seeds []string
	for i := range nodes {
		nodes[i] = startClusterNode(t, fmt.Sprintf("node%d", i), seeds, rule, clock, log)
		if i == 0 {
			seeds = []string{nodes[0].cluster.Self().GossipAddr}
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := membersAlive(nodes)
		if err == nil {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not converge within 10s: %v", err)
		}
	}
}

func startClusterNode(t *testing.T, name string, join []string, rule upstream.Rule, clock *fakeClock, log *zap.Logger) *clusterNode {
	t.Helper()
	log = log.Named(name)
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	base, err := upstream.DefaultTransport(rule)
	if err != nil {
		t.Fatal(err)
	}
	sent := &sentRecorder{inner: base}
	u, err := upstream.New(rule, sent, log)
	if err != nil {
		t.Fatal(err)
	}
	router := upstream.NewRouter([]*upstream.Upstream{u})
	peer := httptest.NewUnstartedServer(nil)
	c, err := cluster.Start(t.Context(), cluster.Config{
		NodeName: name, GossipAddr: "127.0.0.1:0", PeerAddr: peer.Listener.Addr().String(),
		Join: join, Secret: bytes.Repeat([]byte{7}, cluster.SecretSize),
	}, log)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
	})
	p := New(st, func() *upstream.Router { return router }, Options{Logger: log, Now: clock.Now, FillTimeout: time.Minute, Cluster: c})
	t.Cleanup(p.Close)
	peer.Config.Handler = c.RequirePeer(p.PeerHandler(log))
	peer.Start()
	t.Cleanup(peer.Close)
	berth := httptest.NewServer(registry.New(p, registry.WithLogger(log)))
	t.Cleanup(berth.Close)
	return &clusterNode{name: name, proxy: p, cluster: c, berth: berth, sent: sent}
}

// membersAlive checks that every node sees every node alive, with its
// peer address.
func membersAlive(nodes []*clusterNode) error {
	for _, nd := range nodes {
		alive := 0
		for _, m := range nd.cluster.Members() {
			if m.State == cluster.StateAlive && m.PeerAddr != "" {
				alive++
			}
		}
		if alive != len(nodes) {
			return fmt.Errorf("%s sees %d of %d nodes alive", nd.name, alive, len(nodes))
		}
	}
	return nil
}

// pullEach pulls path (repository:tag under the node's address) from
// every node, one after the other, and checks the digest.
func pullEach(t *testing.T, nodes []*clusterNode, path string, want v1.Hash) {
	t.Helper()
	for _, nd := range nodes {
		if d, err := testreg.PullAll(hostOf(nd.berth) + "/" + path); err != nil || d != want {
			t.Fatalf("pull %s from %s: %v %v, want %s", path, nd.name, d, err, want)
		}
	}
}

// pullConcurrently pulls path from every node at once and checks the
// digests.
func pullConcurrently(t *testing.T, nodes []*clusterNode, path string, want v1.Hash) {
	t.Helper()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() {
			d, err := testreg.PullAll(hostOf(nd.berth) + "/" + path)
			if err == nil && d != want {
				err = fmt.Errorf("digest %s, want %s", d, want)
			}
			if err != nil {
				errs[i] = fmt.Errorf("pull %s from %s: %w", path, nd.name, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
