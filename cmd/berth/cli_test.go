package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/admin/admintest"
	"berth/store"
)

// cliRun runs the client against a node and returns stdout and stderr.
func cliRun(t *testing.T, n *admintest.Node, tty bool, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{out: &out, errOut: &errOut, tty: tty, client: n.Server.Client(), poll: 2 * time.Millisecond,
		getenv: func(k string) string {
			if k == "BERTH_ADMIN" {
				return n.URL()
			}
			return ""
		}}
	err := c.run(context.Background(), args)
	return out.String(), errOut.String(), err
}

// cliJSON runs a verb that must succeed and decodes its JSON output.
func cliJSON(t *testing.T, n *admintest.Node, v any, args ...string) string {
	t.Helper()
	out, errOut, err := cliRun(t, n, false, args...)
	if err != nil {
		t.Fatalf("berth %s: %v (stderr %s)", strings.Join(args, " "), err, errOut)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("berth %s: output is not the JSON expected: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return errOut
}

// cliFails runs a verb that must fail and returns the error text.
func cliFails(t *testing.T, n *admintest.Node, args ...string) string {
	t.Helper()
	out, _, err := cliRun(t, n, false, args...)
	if err == nil {
		t.Fatalf("berth %s succeeded: %s", strings.Join(args, " "), out)
	}
	return err.Error()
}

// describe-repositories lists every repository, page after page, as one
// answer.
func TestCLIDescribeRepositoriesFollowsPages(t *testing.T) {
	n := admintest.New(t)
	for i := range 1001 {
		if err := n.Store.PutRepository(t.Context(), &store.Repository{Name: fmt.Sprintf("private/r%04d", i), Mutability: "MUTABLE"}); err != nil {
			t.Fatal(err)
		}
	}
	var dr admin.DescribeRepositoriesResponse
	cliJSON(t, n, &dr, "describe-repositories")
	if len(dr.Repositories) != 1001 || dr.NextToken != "" || dr.Repositories[1000].RepositoryName != "private/r1000" {
		t.Fatalf("described %d repositories, nextToken %q", len(dr.Repositories), dr.NextToken)
	}
}

func TestCLIRepositories(t *testing.T) {
	n := admintest.New(t)
	var cr admin.RepositoryResponse
	cliJSON(t, n, &cr, "create-repository", "--repository-name", "private/app", "--image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION",
		"--image-tag-mutability-exclusion-filters", "filterType=WILDCARD,filter=latest*", "dev-*")
	if f := cr.Repository.ImageTagMutabilityExclusionFilters; cr.Repository.ImageTagMutability != "IMMUTABLE_WITH_EXCLUSION" || len(f) != 2 || f[0].Filter != "latest*" || f[1].Filter != "dev-*" {
		t.Fatalf("created %+v", cr.Repository)
	}
	cliJSON(t, n, nil, "create-repository", "--repository-name=private/other", "-o", "json")
	cliJSON(t, n, nil, "create-repository", "--repository-name", "private/third")

	var dr admin.DescribeRepositoriesResponse
	cliJSON(t, n, &dr, "describe-repositories", "--repository-names", "private/app", "private/other")
	if len(dr.Repositories) != 2 || dr.Repositories[1].RepositoryName != "private/other" {
		t.Fatalf("described %+v", dr.Repositories)
	}
	cliJSON(t, n, &dr, "describe-repositories")
	if len(dr.Repositories) != 3 {
		t.Fatalf("described %+v", dr.Repositories)
	}
	out, _, err := cliRun(t, n, false, "describe-repositories", "-o", "table")
	if err != nil || !strings.HasPrefix(out, "REPOSITORY") || !strings.Contains(out, "private/app") || !strings.Contains(out, "latest*,dev-*") {
		t.Fatalf("table %q, %v", out, err)
	}

	var pm admin.PutImageTagMutabilityRequest
	cliJSON(t, n, &pm, "put-image-tag-mutability", "--repository-name", "private/other", "--image-tag-mutability", "IMMUTABLE")
	if pm.ImageTagMutability != "IMMUTABLE" {
		t.Fatalf("put-image-tag-mutability %+v", pm)
	}

	if msg := cliFails(t, n, "create-repository", "--repository-name", "private/app"); !strings.Contains(msg, "An error occurred (RepositoryAlreadyExistsException) when calling create-repository") {
		t.Fatalf("error %q", msg)
	}
	if msg := cliFails(t, n, "create-repository"); !strings.Contains(msg, "--repository-name is required") {
		t.Fatalf("error %q", msg)
	}
	n.Push("private/app", admintest.Epoch, admintest.NewImage("x", 1), "v1")
	if msg := cliFails(t, n, "delete-repository", "--repository-name", "private/app"); !strings.Contains(msg, "RepositoryNotEmptyException") {
		t.Fatalf("error %q", msg)
	}
	cliJSON(t, n, &cr, "delete-repository", "--repository-name", "private/app", "--force")
	if cr.Repository.RepositoryName != "private/app" {
		t.Fatalf("deleted %+v", cr)
	}
}

func TestCLIImages(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	a := admintest.NewImage("a", 2)
	b := admintest.NewImage("b", 1)
	n.Push("private/app", t0.Add(-time.Hour), a, "v1", "latest")
	n.Push("private/app", t0, b, "v2")
	n.Cache("docker-hub", "library/alpine", t0, admintest.NewImage("alpine", 1), "3.20")

	var li admin.ListImagesResponse
	cliJSON(t, n, &li, "list-images", "--repository-name", "private/app")
	if len(li.ImageIDs) != 3 {
		t.Fatalf("list-images %+v", li.ImageIDs)
	}
	cliJSON(t, n, &li, "list-images", "--repository-name", "private/app", "--filter", "tagStatus=UNTAGGED")
	if len(li.ImageIDs) != 0 {
		t.Fatalf("untagged %+v", li.ImageIDs)
	}

	var di admin.DescribeImagesResponse
	cliJSON(t, n, &di, "describe-images", "--repository-name", "private/app", "--image-ids", "imageTag=v1", "imageDigest="+b.Digest)
	if len(di.ImageDetails) != 2 || di.ImageDetails[0].ImageDigest != a.Digest || di.ImageDetails[0].ImageSizeInBytes != a.Size || di.ImageDetails[1].ImageDigest != b.Digest {
		t.Fatalf("details %+v", di.ImageDetails)
	}
	cliJSON(t, n, &di, "describe-images", "--repository-name", "alpine", "--image-ids", `[{"imageTag":"3.20"}]`)
	if len(di.ImageDetails) != 1 || di.ImageDetails[0].SourceUpstream != "docker-hub" || di.ImageDetails[0].RepositoryName != "docker-hub/library/alpine" {
		t.Fatalf("cached details %+v", di.ImageDetails)
	}
	out, _, err := cliRun(t, n, false, "describe-images", "--repository-name", "private/app", "-o", "table")
	if err != nil || !strings.Contains(out, "LAST PULL") || !strings.Contains(out, shortDigest(a.Digest)) || !strings.Contains(out, "latest,v1") {
		t.Fatalf("table %q, %v", out, err)
	}

	var bd admin.BatchDeleteImageResponse
	cliJSON(t, n, &bd, "batch-delete-image", "--repository-name", "private/app", "--image-ids", "imageTag=latest", "imageTag=nope", "--image-ids", "imageDigest="+b.Digest)
	if !slices.Equal(bd.ImageIDs, []admin.ImageID{{ImageDigest: a.Digest, ImageTag: "latest"}, {ImageDigest: b.Digest, ImageTag: "v2"}}) ||
		len(bd.Failures) != 1 || bd.Failures[0].FailureCode != admin.FailureImageNotFound || bd.Failures[0].ImageID.ImageTag != "nope" {
		t.Fatalf("batch-delete-image %+v", bd)
	}
	if msg := cliFails(t, n, "batch-delete-image", "--repository-name", "private/app", "--image-ids", "tag=v1"); !strings.Contains(msg, "imageDigest=...,imageTag=...") {
		t.Fatalf("error %q", msg)
	}
	if msg := cliFails(t, n, "batch-delete-image", "--repository-name", "private/app"); !strings.Contains(msg, "--image-ids is required") {
		t.Fatalf("error %q", msg)
	}
	if msg := cliFails(t, n, "list-images", "--repository-name", "private/nope"); !strings.Contains(msg, "RepositoryNotFoundException") {
		t.Fatalf("error %q", msg)
	}
}

func TestCLILifecycle(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	old := admintest.NewImage("old", 1)
	mid := admintest.NewImage("mid", 1)
	fresh := admintest.NewImage("fresh", 1)
	n.Push("private/app", t0.Add(-40*24*time.Hour), old)
	n.Push("private/app", t0.Add(-31*24*time.Hour), mid)
	n.Push("private/app", t0.Add(-time.Hour), fresh)
	policy := `{"rules":[{"rulePriority":1,"description":"old untagged","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}

	var lp admin.LifecyclePolicy
	cliJSON(t, n, &lp, "put-lifecycle-policy", "--repository-name", "private/*", "--lifecycle-policy-text", "file://"+file)
	if lp.PolicyScope != "private/*" || lp.LifecyclePolicyText != policy {
		t.Fatalf("put %+v", lp)
	}
	cliJSON(t, n, &lp, "get-lifecycle-policy", "--repository-name", "private/app")
	if lp.PolicyScope != "private/*" {
		t.Fatalf("get %+v", lp)
	}
	msg := cliFails(t, n, "put-lifecycle-policy", "--repository-name", "private/app", "--lifecycle-policy-text", `{"rules":[{"rulePriority":0}]}`)
	if !strings.Contains(msg, "rules[0].rulePriority") || !strings.Contains(msg, "rules[0].selection: required") || strings.Count(msg, "InvalidParameterException") < 3 {
		t.Fatalf("error %q", msg)
	}
	if msg := cliFails(t, n, "get-lifecycle-policy-preview", "--repository-name", "private/app"); !strings.Contains(msg, "LifecyclePolicyPreviewNotFoundException") {
		t.Fatalf("error %q", msg)
	}

	var pv admin.LifecyclePolicyPreview
	errOut := cliJSON(t, n, &pv, "start-lifecycle-policy-preview", "--repository-name", "private/app", "--wait")
	var got []string
	for _, r := range pv.PreviewResults {
		got = append(got, r.ImageDigest)
	}
	if pv.Status != admin.PreviewComplete || !slices.Equal(got, []string{mid.Digest, old.Digest}) || pv.Summary.ExpiringImageTotalCount != 2 {
		t.Fatalf("preview %+v", pv)
	}
	if !strings.Contains(errOut, "preview of private/app: COMPLETE") || !strings.Contains(errOut, "2 would expire") {
		t.Fatalf("progress %q", errOut)
	}
	// Without --wait the start answers at once; get reads it.
	cliJSON(t, n, &pv, "start-lifecycle-policy-preview", "--repository-name", "private/*")
	if pv.RepositoryName != "private/*" || pv.Status == "" {
		t.Fatalf("started %+v", pv)
	}
	cliJSON(t, n, &pv, "get-lifecycle-policy-preview", "--repository-name", "private/*", "--wait")
	if pv.Status != admin.PreviewComplete || len(pv.PreviewResults) != 2 {
		t.Fatalf("get %+v", pv)
	}
	out, _, err := cliRun(t, n, false, "get-lifecycle-policy-preview", "--repository-name", "private/*", "-o", "table")
	if err != nil || !strings.Contains(out, "Would expire 2 images") || !strings.Contains(out, "old untagged") || !strings.Contains(out, shortDigest(old.Digest)) {
		t.Fatalf("table %q, %v", out, err)
	}

	var run admin.LifecycleRun
	errOut = cliJSON(t, n, &run, "run-lifecycle")
	if run.Expired.ImagesExpired != 2 || len(run.ExpiredImages) != 2 || run.GC == nil {
		t.Fatalf("run %+v", run)
	}
	if !strings.Contains(errOut, "applying lifecycle policies: done in") {
		t.Fatalf("progress %q", errOut)
	}
	var li admin.ListImagesResponse
	cliJSON(t, n, &li, "list-images", "--repository-name", "private/app")
	if !slices.Equal(li.ImageIDs, []admin.ImageID{{ImageDigest: fresh.Digest}}) {
		t.Fatalf("after the run %+v", li.ImageIDs)
	}
	var all admin.DescribeLifecyclePoliciesResponse
	cliJSON(t, n, &all, "describe-lifecycle-policies")
	if len(all.LifecyclePolicies) != 1 || all.LifecyclePolicies[0].LastEvaluatedAt == nil {
		t.Fatalf("policies %+v", all)
	}
	cliJSON(t, n, &lp, "delete-lifecycle-policy", "--repository-name", "private/*")
	if msg := cliFails(t, n, "get-lifecycle-policy", "--repository-name", "private/app"); !strings.Contains(msg, "LifecyclePolicyNotFoundException") {
		t.Fatalf("error %q", msg)
	}
}

func TestCLIRulesCacheGC(t *testing.T) {
	n := admintest.New(t)
	var rr admin.PullThroughCacheRuleResponse
	cliJSON(t, n, &rr, "create-pull-through-cache-rule", "--ecr-repository-prefix", "ghcr", "--upstream-registry-url", "https://ghcr.io", "--ttl", "6h")
	if rr.Name != "ghcr" || rr.Active || rr.TTL != "6h0m0s" {
		t.Fatalf("created %+v", rr)
	}
	var dr admin.DescribePullThroughCacheRulesResponse
	cliJSON(t, n, &dr, "describe-pull-through-cache-rules")
	if len(dr.PullThroughCacheRules) != 3 {
		t.Fatalf("rules %+v", dr)
	}
	cliJSON(t, n, &dr, "describe-pull-through-cache-rules", "--ecr-repository-prefixes", "quay,ghcr")
	if len(dr.PullThroughCacheRules) != 2 {
		t.Fatalf("rules %+v", dr)
	}
	out, _, err := cliRun(t, n, false, "describe-pull-through-cache-rules", "-o", "table")
	if err != nil || !strings.Contains(out, "no (restart)") || !strings.Contains(out, "docker.io") {
		t.Fatalf("table %q, %v", out, err)
	}
	cliJSON(t, n, &rr, "delete-pull-through-cache-rule", "--ecr-repository-prefix", "ghcr")
	if msg := cliFails(t, n, "delete-pull-through-cache-rule", "--ecr-repository-prefix", "ghcr"); !strings.Contains(msg, "PullThroughCacheRuleNotFoundException") {
		t.Fatalf("error %q", msg)
	}

	n.Counters.Set(admin.CacheCounters{Hits: 3, Misses: 1})
	n.Cache("quay", "org/x", admintest.Epoch, admintest.NewImage("x", 2), "1")
	if err := n.Service.CountStore(t.Context()); err != nil {
		t.Fatal(err)
	}
	var dc admin.DescribeCacheResponse
	cliJSON(t, n, &dc, "describe-cache")
	if dc.Store.Blobs != 3 || dc.Requests.HitRatio != 0.75 || dc.Upstreams[1].Images != 1 {
		t.Fatalf("describe-cache %+v", dc)
	}
	out, _, err = cliRun(t, n, false, "describe-cache", "-o", "table")
	if err != nil || !strings.Contains(out, "75.0%") || !strings.Contains(out, "quay") {
		t.Fatalf("table %q, %v", out, err)
	}

	im := admintest.NewImage("gone", 1)
	n.Push("private/app", admintest.Epoch, im, "v1")
	cliJSON(t, n, nil, "batch-delete-image", "--repository-name", "private/app", "--image-ids", "imageTag=v1")
	var gc admin.StartGCResponse
	errOut := cliJSON(t, n, &gc, "start-gc", "--grace-period", "0s")
	if gc.BlobsDeleted != 2 || gc.ManifestsDeleted != 1 {
		t.Fatalf("gc %+v", gc)
	}
	if !strings.HasPrefix(errOut, "garbage collection...\n") || !strings.Contains(errOut, "garbage collection: done in") {
		t.Fatalf("plain progress %q", errOut)
	}
	// On a terminal the progress line is redrawn in place.
	_, errOut, err = cliRun(t, n, true, "start-gc")
	if err != nil || !strings.HasPrefix(errOut, "\r\x1b[Kgarbage collection...") || !strings.Contains(errOut, "\r\x1b[Kgarbage collection: done in") {
		t.Fatalf("tty progress %q, %v", errOut, err)
	}
}

func TestCLIEveryTable(t *testing.T) {
	n := admintest.New(t)
	n.Push("private/app", admintest.Epoch, admintest.NewImage("a", 1), "v1")
	n.Cache("docker-hub", "library/alpine", admintest.Epoch, admintest.NewImage("alpine", 1), "3.20")
	if _, err := n.VulnDB.ImportStream(context.Background(), "GHSA-1.json", strings.NewReader(osvJSON("GHSA-1", "minimist", "1.2.6"))); err != nil {
		t.Fatal(err)
	}
	policy := `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}`
	for _, args := range [][]string{
		{"create-repository", "--repository-name", "private/t"},
		{"describe-repositories"},
		{"put-image-tag-mutability", "--repository-name", "private/t", "--image-tag-mutability", "IMMUTABLE"},
		{"list-images", "--repository-name", "private/app"},
		{"describe-images", "--repository-name", "private/app"},
		{"put-lifecycle-policy", "--repository-name", "private/app", "--lifecycle-policy-text", policy},
		{"get-lifecycle-policy", "--repository-name", "private/app"},
		{"describe-lifecycle-policies"},
		{"start-lifecycle-policy-preview", "--repository-name", "private/app", "--wait"},
		{"get-lifecycle-policy-preview", "--repository-name", "private/app"},
		{"run-lifecycle", "--repository-name", "private/*"},
		{"delete-lifecycle-policy", "--repository-name", "private/app"},
		{"set-repository-policy", "--repository-name", "private/*", "--policy-text", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":["delete"]}]}`},
		{"get-repository-policy", "--repository-name", "private/*"},
		{"delete-repository-policy", "--repository-name", "private/*"},
		{"describe-pull-through-cache-rules"},
		{"create-pull-through-cache-rule", "--ecr-repository-prefix", "ghcr", "--upstream-registry-url", "ghcr.io"},
		{"delete-pull-through-cache-rule", "--ecr-repository-prefix", "ghcr"},
		{"describe-cache"},
		{"describe-vulndb"},
		{"start-gc"},
		{"revoke-tokens", "--user", "alice"},
		{"rotate-key", "--new-key-file", cliKeyFile(t)},
		{"sync-now", "--wait"},
		{"describe-sync"},
		{"describe-image-replication-status", "--repository-name", "private/app", "--image-id", "imageTag=v1"},
		{"put-image-scanning-configuration", "--repository-name", "private/app", "--scan-on-push", "true"},
		{"start-image-scan", "--repository-name", "private/app", "--image-id", "imageTag=v1"},
		{"describe-image-scan-findings", "--repository-name", "private/app", "--image-id", "imageTag=v1"},
		{"pin-image", "--repository-name", "docker-hub/library/alpine", "--image-id", "imageTag=3.20"},
		{"unpin-image", "--repository-name", "docker-hub/library/alpine", "--image-id", "imageTag=3.20"},
		{"batch-delete-image", "--repository-name", "private/app", "--image-ids", "imageTag=v1"},
		{"delete-repository", "--repository-name", "private/t"},
	} {
		out, _, err := cliRun(t, n, false, append(args, "-o", "table")...)
		if err != nil || out == "" || strings.HasPrefix(out, "{") {
			t.Errorf("berth %s -o table: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var names []string
	for name := range cliVerbs() {
		names = append(names, name)
	}
	slices.Sort(names)
	// warm is a command of its own (berth warm --from FILE, warm_test.go).
	ops := slices.DeleteFunc(n.Service.Operations(), func(op string) bool { return op == "warm" })
	if !slices.Equal(names, ops) || len(ops) != 33 {
		t.Fatalf("the client's verbs %v are not the API's %v (the table above covers 33)", names, ops)
	}
}

func TestCLIUsageAndErrors(t *testing.T) {
	n := admintest.New(t)
	out, _, err := cliRun(t, n, false, "frobnicate")
	if err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) || !strings.Contains(out, "describe-images") || !strings.Contains(out, "serve") {
		t.Fatalf("unknown command: %v\n%s", err, out)
	}
	if msg := cliFails(t, n, "describe-cache", "-o", "yaml"); !strings.Contains(msg, "not json or table") {
		t.Fatalf("error %q", msg)
	}
	if msg := cliFails(t, n, "describe-cache", "extra"); !strings.Contains(msg, `unexpected argument "extra"`) {
		t.Fatalf("error %q", msg)
	}
	if msg := cliFails(t, n, "describe-cache", "--admin", "http://127.0.0.1:1"); !strings.Contains(msg, "cannot reach the admin API at http://127.0.0.1:1") {
		t.Fatalf("error %q", msg)
	}
	if _, errOut, err := cliRun(t, n, false, "describe-images", "-h"); err == nil || !strings.Contains(errOut, "--repository-name") && !strings.Contains(errOut, "-repository-name") {
		t.Fatalf("help: %v\n%s", err, errOut)
	}
	if out, _, err := cliRun(t, n, false, "describe-cache", "--admin", strings.TrimPrefix(n.URL(), "http://")); err != nil || !strings.Contains(out, `"store"`) {
		t.Fatalf("--admin host:port: %v %s", err, out)
	}
	// Through main's command switch, with BERTH_ADMIN.
	t.Setenv("BERTH_ADMIN", n.URL())
	var buf bytes.Buffer
	if err := run(context.Background(), []string{"describe-repositories"}, &buf); err != nil {
		t.Fatal(err)
	}
	var dr admin.DescribeRepositoriesResponse
	if err := json.Unmarshal(buf.Bytes(), &dr); err != nil || dr.Repositories == nil {
		t.Fatalf("output %q: %v", buf.String(), err)
	}
	if !strings.Contains(buf.String(), "\n    \"repositories\"") {
		t.Fatalf("not indented like the aws CLI: %q", buf.String())
	}
}

func TestExpandLists(t *testing.T) {
	got := expandLists([]string{"--repository-name", "x", "--image-ids", "imageTag=a", "imageTag=b", "-o", "table", "--image-ids=imageTag=c", "--image-ids", "--force"},
		[]string{"image-ids"})
	want := []string{"--repository-name", "x", "--image-ids=imageTag=a", "--image-ids=imageTag=b", "-o", "table", "--image-ids=imageTag=c", "--image-ids", "--force"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	ids, err := parseImageIDs([]string{"imageDigest=sha256:ab,imageTag=v1", `{"imageTag":"v2"}`})
	if err != nil || !slices.Equal(ids, []admin.ImageID{{ImageDigest: "sha256:ab", ImageTag: "v1"}, {ImageTag: "v2"}}) {
		t.Fatalf("ids %+v, %v", ids, err)
	}
	if _, err := parseImageIDs([]string{"imageTag=a,imageTag=b"}); err == nil {
		t.Fatal("a key given twice was accepted")
	}
	if humanBytes(1536) != "1.5 KiB" || humanBytes(10) != "10 B" || humanBytes(3<<30) != "3.0 GiB" {
		t.Fatal(humanBytes(1536), humanBytes(10), humanBytes(3<<30))
	}
}

// cliKeyFile writes a new encryption key file (raw bytes, as admintest
// reads them) for rotate-key.
func cliKeyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0x33}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
