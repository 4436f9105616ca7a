package admin_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/admin/admintest"
	"berth/store"
)

const untaggedPolicy = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`

// appPolicy protects prod images, expires untagged ones after 30 days and
// keeps the two newest of the rest.
const appPolicy = `{"rules":[
 {"rulePriority":1,"description":"keep prod","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":9999},"action":{"type":"expire"}},
 {"rulePriority":2,"description":"old untagged","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}},
 {"rulePriority":3,"description":"keep two","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}`

const tenDaysPolicy = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":10},"action":{"type":"expire"}}]}`

const pulledPolicy = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`

const keepFivePolicy = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}`

func TestLifecyclePolicyVerbs(t *testing.T) {
	n := admintest.New(t)
	n.OK("create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/app"}, nil)
	n.OK("create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/other"}, nil)

	var lp admin.LifecyclePolicy
	n.OK("put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/app", LifecyclePolicyText: appPolicy}, &lp)
	if lp.RepositoryName != "private/app" || lp.PolicyScope != "private/app" || lp.LifecyclePolicyText != appPolicy || lp.LastEvaluatedAt != nil {
		t.Fatalf("put answered %+v", lp)
	}
	n.OK("put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/*", LifecyclePolicyText: untaggedPolicy}, nil)
	n.OK("put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "*", LifecyclePolicyText: keepFivePolicy}, nil)
	// A cached repository's policy is stored under the name clients use.
	n.OK("put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "busybox", LifecyclePolicyText: keepFivePolicy}, &lp)
	if lp.RepositoryName != "docker-hub/library/busybox" {
		t.Fatalf("cached policy stored as %q", lp.RepositoryName)
	}

	for name, scope := range map[string]string{
		"private/app": "private/app", "private/other": "private/*", "private/*": "private/*",
		"quay/org/x": "*", "docker-hub/library/busybox": "docker-hub/library/busybox", "library/busybox": "docker-hub/library/busybox",
	} {
		n.OK("get-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: name}, &lp)
		if lp.PolicyScope != scope || lp.LifecyclePolicyText == "" {
			t.Errorf("get-lifecycle-policy %s: scope %q, want %q", name, lp.PolicyScope, scope)
		}
	}
	var all admin.DescribeLifecyclePoliciesResponse
	n.OK("describe-lifecycle-policies", struct{}{}, &all)
	var scopes []string
	for _, p := range all.LifecyclePolicies {
		scopes = append(scopes, p.PolicyScope)
	}
	if !slices.Equal(scopes, []string{"*", "docker-hub/library/busybox", "private/*", "private/app"}) {
		t.Fatalf("policies %v", scopes)
	}

	// Every invalid field is named.
	bad := `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":0},"action":{"type":"delete"}}]}`
	errs := wantErr(t, n, "put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/app", LifecyclePolicyText: bad}, 400, admin.CodeInvalidParameter)
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
		if e.Code != admin.CodeInvalidParameter || !strings.HasPrefix(e.Message, "lifecyclePolicyText: rules[0].") {
			t.Errorf("entry %+v", e)
		}
	}
	slices.Sort(fields)
	want := []string{"lifecyclePolicyText.rules[0].action.type", "lifecyclePolicyText.rules[0].selection.countNumber", "lifecyclePolicyText.rules[0].selection.countUnit"}
	if !slices.Equal(fields, want) {
		t.Fatalf("fields %v, want %v", fields, want)
	}
	if e := wantErr(t, n, "put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/app", LifecyclePolicyText: "{"}, 400, admin.CodeInvalidParameter); e[0].Field != "lifecyclePolicyText" {
		t.Fatalf("malformed: %+v", e)
	}
	wantErr(t, n, "put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/app"}, 400, admin.CodeInvalidParameter)
	wantErr(t, n, "put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "private/nope", LifecyclePolicyText: appPolicy}, 404, admin.CodeRepositoryNotFound)
	wantErr(t, n, "put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: "Private/*", LifecyclePolicyText: appPolicy}, 400, admin.CodeInvalidParameter)
	n.OK("get-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "private/app"}, &lp)
	if lp.LifecyclePolicyText != appPolicy {
		t.Fatalf("a refused put changed the policy: %s", lp.LifecyclePolicyText)
	}

	// Deleting: only what is set on the name itself.
	wantErr(t, n, "delete-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "private/other"}, 404, admin.CodeLifecyclePolicyNotFound)
	n.OK("delete-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "private/*"}, &lp)
	if lp.PolicyScope != "private/*" || lp.LifecyclePolicyText != untaggedPolicy {
		t.Fatalf("deleted %+v", lp)
	}
	n.OK("delete-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "*"}, nil)
	wantErr(t, n, "get-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "private/other"}, 404, admin.CodeLifecyclePolicyNotFound)
	wantErr(t, n, "get-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "private/nope"}, 404, admin.CodeRepositoryNotFound)
}

// waitPreview polls a preview until it is no longer in progress.
func waitPreview(t *testing.T, n *admintest.Node, name string) admin.LifecyclePolicyPreview {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pv admin.LifecyclePolicyPreview
		n.OK("get-lifecycle-policy-preview", admin.RepositoryNameRequest{RepositoryName: name}, &pv)
		if pv.Status != admin.PreviewInProgress {
			return pv
		}
		if time.Now().After(deadline) {
			t.Fatalf("preview of %s still in progress: %+v", name, pv)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type expiry struct {
	repo, digest string
	rule         int
}

func expiries(rs []admin.PreviewResult) []expiry {
	var out []expiry
	for _, r := range rs {
		out = append(out, expiry{r.RepositoryName, r.ImageDigest, r.AppliedRulePriority})
	}
	return out
}

func digestsOf(t *testing.T, n *admintest.Node, repo string) []string {
	t.Helper()
	var li admin.ListImagesResponse
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: repo}, &li)
	var out []string
	for _, id := range li.ImageIDs {
		if !slices.Contains(out, id.ImageDigest) {
			out = append(out, id.ImageDigest)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(ds ...string) []string {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

func TestLifecyclePreviewAndApply(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	ago := func(days int) time.Time { return t0.Add(-time.Duration(days) * day) }

	// private/app, under its own policy.
	u2 := admintest.NewImage("u2", 1)
	c := admintest.NewImage("c", 1)
	b := admintest.NewImage("b", 1)
	u1 := admintest.NewImage("u1", 1)
	a := admintest.NewImage("a", 2)
	ch := admintest.NewImage("child", 1)
	idx := admintest.NewIndex(ch)
	prod := admintest.NewImage("prod", 1)
	n.Push("private/app", ago(1), u2)
	n.Push("private/app", ago(5), c, "v3")
	n.Push("private/app", ago(20), b, "v2")
	n.Push("private/app", ago(35), u1)
	n.Push("private/app", ago(40), a, "v1")
	n.Push("private/app", ago(50), idx, "multi")
	n.Push("private/app", ago(100), prod, "prod-1")
	// private/other, under the private/* pattern.
	o1, o2 := admintest.NewImage("o1", 1), admintest.NewImage("o2", 1)
	n.Push("private/other", ago(11), o1, "old")
	n.Push("private/other", ago(1), o2, "new")
	// Cached: docker-hub/* expires what was not pulled for 30 days, but
	// busybox has its own policy.
	shared := admintest.NewImage("shared", 1)
	x := admintest.NewImage("x", 1)
	x.Blobs = append(x.Blobs, shared.Blobs[1])
	x = reManifest(x)
	y := admintest.NewImage("y", 1)
	y.Blobs = append(y.Blobs, shared.Blobs[1])
	y = reManifest(y)
	z := admintest.NewImage("z", 1)
	w := admintest.NewImage("w", 1)
	n.Cache("docker-hub", "library/alpine", ago(60), x, "3.18")
	n.Cache("docker-hub", "library/alpine", ago(60), y, "3.19")
	n.Cache("docker-hub", "library/alpine", ago(10), z, "3.20")
	n.Pulled(store.CachedKey("docker-hub", "library/alpine"), x.Digest, ago(45))
	n.Pulled(store.CachedKey("docker-hub", "library/alpine"), y.Digest, ago(2))
	n.Cache("docker-hub", "library/busybox", ago(90), w, "1")

	wantErr(t, n, "start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "private/app"}, 404, admin.CodeLifecyclePolicyNotFound)
	for _, p := range []admin.PutLifecyclePolicyRequest{
		{RepositoryName: "private/app", LifecyclePolicyText: appPolicy},
		{RepositoryName: "private/*", LifecyclePolicyText: tenDaysPolicy},
		{RepositoryName: "docker-hub/*", LifecyclePolicyText: pulledPolicy},
		{RepositoryName: "docker-hub/library/busybox", LifecyclePolicyText: keepFivePolicy},
	} {
		n.OK("put-lifecycle-policy", p, nil)
	}
	wantErr(t, n, "get-lifecycle-policy-preview", admin.RepositoryNameRequest{RepositoryName: "private/app"}, 404, admin.CodePreviewNotFound)

	before := map[string][]string{}
	for _, r := range []string{"private/app", "private/other", "docker-hub/library/alpine", "docker-hub/library/busybox"} {
		before[r] = digestsOf(t, n, r)
	}

	// private/app: u1 by rule 2; b, a and the index by rule 3, and the
	// index's child with it (never evaluated on its own).
	var st admin.LifecyclePolicyPreview
	n.OK("start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "private/app"}, &st)
	if st.RepositoryName != "private/app" || st.LifecyclePolicyText != appPolicy || (st.Status != admin.PreviewInProgress && st.Status != admin.PreviewComplete) {
		t.Fatalf("start answered %+v", st)
	}
	pv := waitPreview(t, n, "private/app")
	last := []expiry{{"private/app", idx.Digest, 3}, {"private/app", ch.Digest, 3}}
	slices.SortFunc(last, func(p, q expiry) int { return strings.Compare(p.digest, q.digest) })
	wantApp := append([]expiry{{"private/app", u1.Digest, 2}, {"private/app", b.Digest, 3}, {"private/app", a.Digest, 3}}, last...)
	if got := expiries(pv.PreviewResults); pv.Status != admin.PreviewComplete || !slices.Equal(got, wantApp) {
		t.Fatalf("preview %s\n got %+v\nwant %+v", pv.Status, got, wantApp)
	}
	wantBytes := u1.Size + b.Size + a.Size + idx.Size + ch.Size
	if s := pv.Summary; s == nil || s.ExpiringImageTotalCount != 5 || s.ExpiringImageTotalBytes != wantBytes || len(s.Rules) != 3 ||
		s.Rules[0].ExpiringImageCount != 0 || s.Rules[1].ExpiringImageCount != 1 || s.Rules[2].ExpiringImageCount != 4 || s.Rules[2].Description != "keep two" {
		t.Fatalf("summary %+v (want %d bytes)", pv.Summary, wantBytes)
	}
	if p := pv.Progress; p == nil || p.RepositoriesTotal != 1 || p.RepositoriesDone != 1 || p.ImagesEvaluated != 8 {
		t.Fatalf("progress %+v", pv.Progress)
	}
	for _, r := range pv.PreviewResults {
		if r.Action.Type != "EXPIRE" || r.ImagePushedAt == nil || r.Reason == "" {
			t.Fatalf("result %+v", r)
		}
	}

	// A pattern's preview covers the repositories it governs only.
	n.OK("start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "private/*"}, nil)
	pv = waitPreview(t, n, "private/*")
	if got := expiries(pv.PreviewResults); !slices.Equal(got, []expiry{{"private/other", o1.Digest, 1}}) || pv.Progress.RepositoriesTotal != 1 {
		t.Fatalf("private/* preview %+v progress %+v", got, pv.Progress)
	}
	n.OK("start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "docker-hub/*"}, nil)
	pv = waitPreview(t, n, "docker-hub/*")
	if got := expiries(pv.PreviewResults); !slices.Equal(got, []expiry{{"docker-hub/library/alpine", x.Digest, 1}}) {
		t.Fatalf("docker-hub/* preview %+v", got)
	}
	// A repository a pattern governs previews the pattern's policy.
	n.OK("start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "alpine"}, &st)
	if st.RepositoryName != "docker-hub/library/alpine" || st.LifecyclePolicyText != pulledPolicy {
		t.Fatalf("start answered %+v", st)
	}
	if pv = waitPreview(t, n, "docker-hub/library/alpine"); len(pv.PreviewResults) != 1 {
		t.Fatalf("alpine preview %+v", pv.PreviewResults)
	}
	// A text is previewed as if it were put.
	keepOne := strings.Replace(keepFivePolicy, `"countNumber":5`, `"countNumber":1`, 1)
	n.OK("start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "private/app", LifecyclePolicyText: keepOne}, nil)
	if pv = waitPreview(t, n, "private/app"); len(pv.PreviewResults) != 7 || pv.LifecyclePolicyText != keepOne {
		t.Fatalf("keep-one preview: %d results", len(pv.PreviewResults))
	}
	wantErr(t, n, "start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "private/app", LifecyclePolicyText: `{"rules":[]}`}, 400, admin.CodeInvalidParameter)
	wantErr(t, n, "start-lifecycle-policy-preview", admin.StartLifecyclePolicyPreviewRequest{RepositoryName: "quay/*"}, 404, admin.CodeLifecyclePolicyNotFound)

	// Previews changed nothing.
	for r, ds := range before {
		if got := digestsOf(t, n, r); !slices.Equal(got, ds) {
			t.Fatalf("%s changed by a preview: %v, was %v", r, got, ds)
		}
	}

	// Applying expires exactly what the previews listed.
	var run admin.LifecycleRun
	n.OK("run-lifecycle", admin.RunLifecycleRequest{}, &run)
	wantAll := append(slices.Clone(wantApp), expiry{"private/other", o1.Digest, 1}, expiry{"docker-hub/library/alpine", x.Digest, 1})
	key := func(e expiry) string { return e.repo + " " + e.digest }
	gotAll := expiries(run.ExpiredImages)
	slices.SortFunc(gotAll, func(p, q expiry) int { return strings.Compare(key(p), key(q)) })
	slices.SortFunc(wantAll, func(p, q expiry) int { return strings.Compare(key(p), key(q)) })
	if !slices.Equal(gotAll, wantAll) || len(run.Errors) != 0 {
		t.Fatalf("run expired\n got %+v\nwant %+v\nerrors %v", gotAll, wantAll, run.Errors)
	}
	if run.RepositoriesEvaluated != 4 || run.ImagesEvaluated != 8+2+3+1 || run.Expired.ImagesExpired != 7 || run.Expired.LocalImagesExpired != 6 || run.GC == nil {
		t.Fatalf("run %+v", run)
	}
	for r, want := range map[string][]string{
		"private/app":                sorted(u2.Digest, c.Digest, prod.Digest),
		"private/other":              sorted(o2.Digest),
		"docker-hub/library/alpine":  sorted(y.Digest, z.Digest),
		"docker-hub/library/busybox": sorted(w.Digest),
	} {
		if got := digestsOf(t, n, r); !slices.Equal(got, want) {
			t.Errorf("%s after the run: %v, want %v", r, got, want)
		}
	}
	// Garbage collection reclaimed the expired local images' blobs, and
	// the run the cached ones' that no remaining image uses.
	for _, im := range []admintest.Image{u1, b, a, ch, o1} {
		for _, bl := range im.Blobs {
			if n.HasBlob(bl.Desc.Digest) {
				t.Errorf("blob %s of an expired image survived", bl.Desc.Digest)
			}
		}
		if n.HasManifest(im.Digest) {
			t.Errorf("manifest %s of an expired image survived", im.Digest)
		}
	}
	if n.HasBlob(x.Blobs[0].Desc.Digest) || n.HasBlob(x.Blobs[1].Desc.Digest) || n.HasManifest(x.Digest) || n.HasManifest(idx.Digest) {
		t.Error("the expired cached image or the index survived")
	}
	for _, im := range []admintest.Image{u2, c, prod, o2, y, z, w} {
		for _, bl := range im.Blobs {
			if !n.HasBlob(bl.Desc.Digest) {
				t.Errorf("blob %s of a kept image is gone", bl.Desc.Digest)
			}
		}
	}
	var lp admin.LifecyclePolicy
	n.OK("get-lifecycle-policy", admin.RepositoryNameRequest{RepositoryName: "private/app"}, &lp)
	if lp.LastEvaluatedAt == nil || !lp.LastEvaluatedAt.Equal(t0) {
		t.Fatalf("lastEvaluatedAt %v", lp.LastEvaluatedAt)
	}

	// Nothing more expires at the same instant; ten days on, the pattern
	// takes o2 and the keep-two rule nothing more.
	again, err := n.Service.RunLifecycle(t.Context())
	if err != nil || len(again.ExpiredImages) != 0 || again.GC != nil {
		t.Fatalf("second run %+v, %v", again, err)
	}
	n.Clock.Set(t0.Add(10 * day))
	later, err := n.Service.RunLifecycle(t.Context())
	if err != nil || !slices.Equal(expiries(later.ExpiredImages), []expiry{{"private/other", o2.Digest, 1}}) {
		t.Fatalf("later run %+v, %v", expiries(later.ExpiredImages), err)
	}
	// run-lifecycle for one scope leaves the others.
	n.Clock.Set(t0.Add(100 * day))
	var scoped admin.LifecycleRun
	n.OK("run-lifecycle", admin.RunLifecycleRequest{RepositoryName: "docker-hub/*"}, &scoped)
	for _, e := range scoped.ExpiredImages {
		if !strings.HasPrefix(e.RepositoryName, "docker-hub/") {
			t.Fatalf("a run for docker-hub/* expired %+v", e)
		}
	}
	if len(scoped.ExpiredImages) != 2 { // y and z, no longer pulled
		t.Fatalf("scoped run %+v", expiries(scoped.ExpiredImages))
	}
	// A run for one repository reads that repository alone, never the
	// list of every repository; a pattern's run walks them once.
	walks := admin.CountRepositoryWalks(n.Service)
	var one admin.LifecycleRun
	n.OK("run-lifecycle", admin.RunLifecycleRequest{RepositoryName: "private/app"}, &one)
	if walks.Load() != 0 || one.RepositoriesEvaluated != 1 {
		t.Fatalf("a run for private/app: %d walks, %d repositories evaluated", walks.Load(), one.RepositoriesEvaluated)
	}
	n.OK("run-lifecycle", admin.RunLifecycleRequest{RepositoryName: "private/*"}, &one)
	if walks.Load() != 1 || one.RepositoriesEvaluated < 2 {
		t.Fatalf("a run for private/*: %d walks, %d repositories evaluated", walks.Load(), one.RepositoriesEvaluated)
	}
}
