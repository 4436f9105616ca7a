package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/admin/admintest"
	"berth/metrics"
	"berth/store"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const day = 24 * time.Hour

// errBody is the API's error body.
type errBody struct {
	Errors []admin.ErrorEntry `json:"errors"`
}

// wantErr calls verb and checks the status and first error code; it
// returns the entries.
func wantErr(t *testing.T, n *admintest.Node, verb string, req any, status int, code string) []admin.ErrorEntry {
	t.Helper()
	st, body := n.Call(verb, req)
	if st != status {
		t.Fatalf("%s: status %d, want %d: %s", verb, st, status, body)
	}
	var eb errBody
	if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) == 0 {
		t.Fatalf("%s: body %s is not an error body: %v", verb, body, err)
	}
	if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		t.Fatalf("%s: error %+v, want code %s with a message", verb, eb.Errors[0], code)
	}
	return eb.Errors
}

func TestRepositories(t *testing.T) {
	n := admintest.New(t)
	var cr admin.RepositoryResponse
	n.OK("create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/app"}, &cr)
	if cr.Repository.RepositoryName != "private/app" || cr.Repository.ImageTagMutability != "MUTABLE" || !cr.Repository.CreatedAt.Equal(admintest.Epoch) {
		t.Fatalf("created %+v", cr.Repository)
	}
	n.OK("create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/fixed", ImageTagMutability: "IMMUTABLE_WITH_EXCLUSION",
		ImageTagMutabilityExclusionFilters: []admin.ExclusionFilter{{FilterType: "WILDCARD", Filter: "latest*"}}}, &cr)
	if f := cr.Repository.ImageTagMutabilityExclusionFilters; len(f) != 1 || f[0].Filter != "latest*" || f[0].FilterType != "WILDCARD" {
		t.Fatalf("exclusions %+v", f)
	}

	wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/app"}, 409, admin.CodeRepositoryAlreadyExists)
	if e := wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{RepositoryName: "Private/App"}, 400, admin.CodeInvalidParameter); e[0].Field != "repositoryName" {
		t.Fatalf("field %q", e[0].Field)
	}
	wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{}, 400, admin.CodeInvalidParameter)
	// Names an upstream takes are pull-through caches, not local.
	for _, name := range []string{"docker-hub/library/alpine", "alpine", "quay/prometheus/prometheus"} {
		wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{RepositoryName: name}, 400, admin.CodeInvalidParameter)
	}
	if e := wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/x", ImageTagMutability: "SOMETIMES"}, 400, admin.CodeInvalidParameter); e[0].Field != "imageTagMutability" {
		t.Fatalf("field %q", e[0].Field)
	}
	wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/x", ImageTagMutability: "IMMUTABLE_WITH_EXCLUSION"}, 400, admin.CodeInvalidParameter)
	wantErr(t, n, "create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/x", ImageTagMutability: "IMMUTABLE_WITH_EXCLUSION",
		ImageTagMutabilityExclusionFilters: []admin.ExclusionFilter{{FilterType: "REGEX", Filter: "x"}}}, 400, admin.CodeInvalidParameter)

	var dr admin.DescribeRepositoriesResponse
	n.OK("describe-repositories", struct{}{}, &dr)
	if names := repoNames(dr); !slices.Equal(names, []string{"private/app", "private/fixed"}) {
		t.Fatalf("repositories %v", names)
	}
	n.OK("describe-repositories", admin.DescribeRepositoriesRequest{RepositoryNames: []string{"private/fixed"}}, &dr)
	if names := repoNames(dr); !slices.Equal(names, []string{"private/fixed"}) || dr.Repositories[0].ImageTagMutability != "IMMUTABLE_WITH_EXCLUSION" {
		t.Fatalf("repositories %+v", dr.Repositories)
	}
	wantErr(t, n, "describe-repositories", admin.DescribeRepositoriesRequest{RepositoryNames: []string{"private/nope"}}, 404, admin.CodeRepositoryNotFound)
	wantErr(t, n, "describe-repositories", admin.DescribeRepositoriesRequest{RepositoryNames: []string{"docker-hub/library/alpine"}}, 404, admin.CodeRepositoryNotFound)

	var pm admin.PutImageTagMutabilityRequest
	n.OK("put-image-tag-mutability", admin.PutImageTagMutabilityRequest{RepositoryName: "private/app", ImageTagMutability: "IMMUTABLE"}, &pm)
	if pm.ImageTagMutability != "IMMUTABLE" {
		t.Fatalf("put-image-tag-mutability answered %+v", pm)
	}
	if rec, _ := n.Repos.Repository(t.Context(), "private/app"); rec.Mutability != "IMMUTABLE" {
		t.Fatalf("stored mutability %s", rec.Mutability)
	}
	wantErr(t, n, "put-image-tag-mutability", admin.PutImageTagMutabilityRequest{RepositoryName: "private/app", ImageTagMutability: "NEVER"}, 400, admin.CodeInvalidParameter)
	wantErr(t, n, "put-image-tag-mutability", admin.PutImageTagMutabilityRequest{RepositoryName: "private/nope", ImageTagMutability: "MUTABLE"}, 404, admin.CodeRepositoryNotFound)

	// Deleting: a repository with images needs force; its policy goes with it.
	im := admintest.NewImage("app", 2)
	n.Push("private/app", admintest.Epoch, im, "v1")
	n.OK("put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/app", LifecyclePolicyText: untaggedPolicy}, nil)
	wantErr(t, n, "delete-repository", admin.DeleteRepositoryRequest{RepositoryName: "private/app"}, 409, admin.CodeRepositoryNotEmpty)
	n.OK("delete-repository", admin.DeleteRepositoryRequest{RepositoryName: "private/fixed"}, &cr)
	if cr.Repository.RepositoryName != "private/fixed" {
		t.Fatalf("deleted %+v", cr.Repository)
	}
	n.OK("delete-repository", admin.DeleteRepositoryRequest{RepositoryName: "private/app", Force: true}, nil)
	wantErr(t, n, "delete-repository", admin.DeleteRepositoryRequest{RepositoryName: "private/app"}, 404, admin.CodeRepositoryNotFound)
	n.OK("describe-repositories", struct{}{}, &dr)
	if len(dr.Repositories) != 0 {
		t.Fatalf("repositories after deletes: %+v", dr.Repositories)
	}
	if _, err := n.Store.GetPolicy(t.Context(), store.PolicyLifecycle, "private/app"); err != store.ErrNotFound {
		t.Fatalf("the deleted repository's policy: %v", err)
	}
	// Recreated, it is empty; garbage collection takes the old blobs.
	n.OK("create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/app"}, nil)
	var li admin.ListImagesResponse
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "private/app"}, &li)
	if len(li.ImageIDs) != 0 {
		t.Fatalf("images of the recreated repository: %+v", li.ImageIDs)
	}
	var gc admin.StartGCResponse
	n.OK("start-gc", struct{}{}, &gc)
	if gc.BlobsDeleted != 3 || gc.ManifestsDeleted != 1 {
		t.Fatalf("gc after a forced delete: %+v", gc)
	}
	for _, b := range im.Blobs {
		if n.HasBlob(b.Desc.Digest) {
			t.Fatalf("blob %s survived", b.Desc.Digest)
		}
	}
}

func repoNames(dr admin.DescribeRepositoriesResponse) []string {
	var out []string
	for _, r := range dr.Repositories {
		out = append(out, r.RepositoryName)
	}
	return out
}

// describe-cache reports the store's totals, the cache counters, and the
// repositories and images per upstream as the last background count found
// them: 40 requests walk the store no more than the one count does.
func TestDescribeCacheAndGC(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	n.Counters.Set(admin.CacheCounters{Hits: 6, Misses: 2, Revalidated: 1, Stale: 1, EvictedBlobs: 4})
	n.Cache("docker-hub", "library/alpine", t0, admintest.NewImage("alpine", 1), "3.20")
	n.Cache("docker-hub", "library/alpine", t0, admintest.NewImage("alpine2", 1), "3.21")
	n.Cache("docker-hub", "library/busybox", t0, admintest.NewImage("busybox", 1), "1")
	n.Cache("quay", "org/x", t0, admintest.NewImage("x", 1), "1")
	n.Cache("gone", "old/thing", t0, admintest.NewImage("old", 1), "1")
	a := admintest.NewImage("app", 3)
	n.Push("private/app", t0, a, "v1")
	n.OK("create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/empty"}, nil)

	// The repository and image counts are a background pass's, which
	// requests never run, however many come: none before the first pass.
	walks := admin.CountWalks(n.Service)
	var dc admin.DescribeCacheResponse
	for range 20 {
		n.OK("describe-cache", struct{}{}, &dc)
	}
	if walks.Load() != 0 || dc.CountsAsOf != nil || dc.Local != (admin.RepositoryStats{}) || dc.Upstreams[0].Images != 0 {
		t.Fatalf("before the first pass: %d walks, %+v", walks.Load(), dc)
	}
	if err := n.Service.CountStore(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		n.OK("describe-cache", struct{}{}, &dc)
	}
	if walks.Load() != 1 || dc.CountsAsOf == nil {
		t.Fatalf("after one pass: %d walks, countsAsOf %v", walks.Load(), dc.CountsAsOf)
	}
	st := n.Store.Stats()
	if dc.Store.Bytes != st.BlobBytes || dc.Store.Blobs != st.Blobs || st.Blobs != 14 {
		t.Fatalf("store %+v, stats %+v", dc.Store, st)
	}
	if dc.Requests == nil || dc.Requests.Hits != 6 || dc.Requests.Misses != 2 || dc.Requests.HitRatio != 0.8 || dc.Evictions == nil || dc.Evictions.Blobs != 4 {
		t.Fatalf("requests %+v evictions %+v", dc.Requests, dc.Evictions)
	}
	if dc.Local != (admin.RepositoryStats{Repositories: 2, Images: 1}) {
		t.Fatalf("local %+v", dc.Local)
	}
	want := []admin.UpstreamStats{
		{Name: "docker-hub", Prefix: "docker-hub", RepositoryStats: admin.RepositoryStats{Repositories: 2, Images: 3}},
		{Name: "quay", Prefix: "quay", RepositoryStats: admin.RepositoryStats{Repositories: 1, Images: 1}},
		{Name: "gone", RepositoryStats: admin.RepositoryStats{Repositories: 1, Images: 1}},
	}
	if !slices.Equal(dc.Upstreams, want) {
		t.Fatalf("upstreams %+v", dc.Upstreams)
	}

	// start-gc reclaims the blobs of a deleted image.
	n.OK("batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageTag: "v1"}}}, nil)
	var gc admin.StartGCResponse
	wantErr(t, n, "start-gc", admin.StartGCRequest{GracePeriod: "soon"}, 400, admin.CodeInvalidParameter)
	n.OK("start-gc", admin.StartGCRequest{GracePeriod: "0s"}, &gc)
	if gc.BlobsDeleted != 4 || gc.BytesFreed != a.Size || gc.ManifestsDeleted != 1 {
		t.Fatalf("gc %+v (want 4 blobs, %d bytes)", gc, a.Size)
	}
}

func TestPromStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	for range 3 {
		m.CacheResult("blob", "hit")
	}
	m.CacheResult("manifest", "hit")
	m.CacheResult("tag", "miss")
	m.CacheResult("tag", "revalidated")
	m.CacheResult("tag", "stale")
	m.Evictions.Add(7)
	got := admin.PromStats(reg).CacheCounters()
	if got != (admin.CacheCounters{Hits: 4, Misses: 1, Revalidated: 1, Stale: 1, EvictedBlobs: 7}) {
		t.Fatalf("counters %+v", got)
	}
}

func TestPullThroughCacheRules(t *testing.T) {
	n := admintest.New(t)
	var dr admin.DescribePullThroughCacheRulesResponse
	n.OK("describe-pull-through-cache-rules", struct{}{}, &dr)
	if len(dr.PullThroughCacheRules) != 2 {
		t.Fatalf("rules %+v", dr.PullThroughCacheRules)
	}
	if r := dr.PullThroughCacheRules[0]; r.Name != "docker-hub" || r.EcrRepositoryPrefix != "docker-hub" || r.UpstreamRegistry != "docker.io" ||
		r.Source != "config" || !r.Active || !r.Default || r.TTL != "24h0m0s" {
		t.Fatalf("config rule %+v", r)
	}

	var cr admin.PullThroughCacheRuleResponse
	n.OK("create-pull-through-cache-rule", admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "ghcr", UpstreamRegistryURL: "ghcr.io", TTL: "1h"}, &cr)
	if cr.Name != "ghcr" || cr.UpstreamRegistryURL != "https://ghcr.io" || cr.UpstreamRegistry != "ghcr.io" || cr.Source != "api" || cr.Active ||
		cr.TTL != "1h0m0s" || cr.CreatedAt == nil || cr.Note == "" {
		t.Fatalf("created %+v", cr)
	}
	n.OK("describe-pull-through-cache-rules", admin.DescribePullThroughCacheRulesRequest{EcrRepositoryPrefixes: []string{"ghcr"}}, &dr)
	if len(dr.PullThroughCacheRules) != 1 || dr.PullThroughCacheRules[0].Source != "api" {
		t.Fatalf("rules %+v", dr.PullThroughCacheRules)
	}
	wantErr(t, n, "describe-pull-through-cache-rules", admin.DescribePullThroughCacheRulesRequest{EcrRepositoryPrefixes: []string{"nope"}}, 404, admin.CodeRuleNotFound)

	wantErr(t, n, "create-pull-through-cache-rule", admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "ghcr", UpstreamRegistryURL: "https://ghcr2.io"}, 409, admin.CodeRuleAlreadyExists)
	wantErr(t, n, "create-pull-through-cache-rule", admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "quay2", UpstreamRegistryURL: "https://quay.io"}, 409, admin.CodeRuleAlreadyExists)
	wantErr(t, n, "create-pull-through-cache-rule", admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "hub2", UpstreamRegistryURL: "https://h.example", Default: true}, 409, admin.CodeRuleAlreadyExists)
	wantErr(t, n, "create-pull-through-cache-rule", admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "private", UpstreamRegistryURL: "https://p.example"}, 400, admin.CodeInvalidParameter)
	for _, c := range []struct {
		req   admin.CreatePullThroughCacheRuleRequest
		field string
	}{
		{admin.CreatePullThroughCacheRuleRequest{UpstreamRegistryURL: "https://x.example"}, "ecrRepositoryPrefix"},
		{admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "x"}, "upstreamRegistryUrl"},
		{admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "Bad/Prefix", UpstreamRegistryURL: "https://x.example"}, "ecrRepositoryPrefix"},
		{admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "x", UpstreamRegistryURL: "ftp://x.example"}, "upstreamRegistryUrl"},
		{admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "x", UpstreamRegistryURL: "https://x.example/v2/"}, "upstreamRegistryUrl"},
		{admin.CreatePullThroughCacheRuleRequest{EcrRepositoryPrefix: "x", UpstreamRegistryURL: "https://x.example", TTL: "-1h"}, "ttl"},
	} {
		if e := wantErr(t, n, "create-pull-through-cache-rule", c.req, 400, admin.CodeInvalidParameter); e[0].Field != c.field {
			t.Fatalf("%+v: field %q, want %q (%s)", c.req, e[0].Field, c.field, e[0].Message)
		}
	}

	// Persisted rules are merged after the config's at start.
	merged, err := admin.MergeRules(t.Context(), n.Store, n.Rules, []string{"private"})
	if err != nil || len(merged) != 3 || merged[2].Name != "ghcr" || merged[2].URL != "https://ghcr.io" || merged[2].TTL != time.Hour {
		t.Fatalf("merged %+v, %v", merged, err)
	}
	// A persisted rule that a new config conflicts with is left out.
	conflicting := append(slices.Clone(n.Rules), n.Rules[1])
	conflicting[2].Name, conflicting[2].Registry, conflicting[2].Prefix = "ghcr-config", "", "ghcr"
	merged, err = admin.MergeRules(t.Context(), n.Store, conflicting, nil)
	if err == nil || len(merged) != 3 || !strings.Contains(err.Error(), "ghcr") {
		t.Fatalf("merged %+v, %v", merged, err)
	}

	wantErr(t, n, "delete-pull-through-cache-rule", admin.DeletePullThroughCacheRuleRequest{EcrRepositoryPrefix: "quay"}, 400, admin.CodeInvalidParameter)
	n.OK("delete-pull-through-cache-rule", admin.DeletePullThroughCacheRuleRequest{EcrRepositoryPrefix: "ghcr"}, &cr)
	if cr.Name != "ghcr" {
		t.Fatalf("deleted %+v", cr)
	}
	wantErr(t, n, "delete-pull-through-cache-rule", admin.DeletePullThroughCacheRuleRequest{EcrRepositoryPrefix: "ghcr"}, 404, admin.CodeRuleNotFound)
	n.OK("describe-pull-through-cache-rules", struct{}{}, &dr)
	if len(dr.PullThroughCacheRules) != 2 {
		t.Fatalf("rules after delete %+v", dr.PullThroughCacheRules)
	}
}

func TestProtocol(t *testing.T) {
	n := admintest.New(t)
	do := func(method, path, ctype, host string, body string) (int, errBody) {
		t.Helper()
		req, err := http.NewRequest(method, n.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := n.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var eb errBody
		if resp.StatusCode != 200 {
			if err := json.Unmarshal(b, &eb); err != nil || len(eb.Errors) == 0 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s %s: %d with body %q", method, path, resp.StatusCode, b)
			}
		}
		return resp.StatusCode, eb
	}
	for _, c := range []struct {
		method, path, ctype, host, body string
		status                          int
		code                            string
	}{
		{"GET", "/admin/v1/describe-repositories", "", "", "", 405, admin.CodeMethodNotAllowed},
		{"POST", "/admin/v1/nope", "application/json", "", "{}", 404, admin.CodeUnknownOperation},
		{"POST", "/admin/v1/", "application/json", "", "{}", 404, admin.CodeUnknownOperation},
		{"POST", "/admin/v1/describe-repositories", "", "", "{}", 415, admin.CodeUnsupportedMediaType},
		{"POST", "/admin/v1/describe-repositories", "text/plain", "", "{}", 415, admin.CodeUnsupportedMediaType},
		{"POST", "/admin/v1/describe-repositories", "application/json", "", `{"repositoryNamez":[]}`, 400, admin.CodeInvalidParameter},
		{"POST", "/admin/v1/describe-repositories", "application/json", "", `{`, 400, admin.CodeInvalidParameter},
		{"POST", "/admin/v1/describe-repositories", "application/json", "", `{} {}`, 400, admin.CodeInvalidParameter},
		{"POST", "/admin/v1/describe-repositories", "application/json", "evil.example:5001", `{}`, 403, admin.CodeAccessDenied},
		{"POST", "/admin/v1/describe-repositories", "application/json; charset=utf-8", "localhost:5001", ``, 200, ""},
		{"POST", "/admin/v1/describe-repositories", "application/json", "[::1]:5001", `{}`, 200, ""},
	} {
		status, eb := do(c.method, c.path, c.ctype, c.host, c.body)
		if status != c.status || c.code != "" && eb.Errors[0].Code != c.code {
			t.Errorf("%s %s (%s, host %q, %q): %d %+v, want %d %s", c.method, c.path, c.ctype, c.host, c.body, status, eb, c.status, c.code)
		}
	}
	// An oversized body is refused.
	status, _ := do("POST", "/admin/v1/describe-repositories", "application/json", "", `{"repositoryNames":["`+strings.Repeat("a", 2<<20)+`"]}`)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized request: %d", status)
	}
}
