package admin_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/admin/admintest"
	"berth/store"
)

func ptr(n int) *int { return &n }

// describeAll pages through describe-repositories, maxResults at a time,
// and returns the names in order.
func describeAll(t *testing.T, n *admintest.Node, req admin.DescribeRepositoriesRequest) []string {
	t.Helper()
	var names []string
	for i := 0; ; i++ {
		var page admin.DescribeRepositoriesResponse
		n.OK("describe-repositories", req, &page)
		if len(page.Repositories) > *req.MaxResults {
			t.Fatalf("page %d: %d repositories, more than maxResults %d", i, len(page.Repositories), *req.MaxResults)
		}
		for _, r := range page.Repositories {
			names = append(names, r.RepositoryName)
		}
		if page.NextToken == "" {
			return names
		}
		req.NextToken = page.NextToken
	}
}

// TestDescribeRepositoriesPages: maxResults pages the listing, with and
// without the cached repositories, and every page together is the whole
// listing, in the same order.
func TestDescribeRepositoriesPages(t *testing.T) {
	n := admintest.New(t)
	for i := 0; i < 5; i++ {
		n.Push(fmt.Sprintf("private/app%d", i), admintest.Epoch, admintest.NewImage(fmt.Sprint("app", i), 1), "v1")
	}
	for i := 0; i < 4; i++ {
		n.Cache("docker-hub", fmt.Sprintf("library/img%d", i), admintest.Epoch, admintest.NewImage(fmt.Sprint("img", i), 1), "v1")
	}
	var whole admin.DescribeRepositoriesResponse
	n.OK("describe-repositories", admin.DescribeRepositoriesRequest{IncludeCached: true}, &whole)
	if whole.NextToken != "" {
		t.Errorf("a listing without maxResults has a nextToken")
	}
	var wantAll []string
	for _, r := range whole.Repositories {
		wantAll = append(wantAll, r.RepositoryName)
	}
	for _, size := range []int{1, 2, 5, 9, 1000} {
		if got := describeAll(t, n, admin.DescribeRepositoriesRequest{MaxResults: ptr(size)}); !slices.Equal(got, wantAll[:5]) {
			t.Errorf("pages of %d: %v, want %v", size, got, wantAll[:5])
		}
		got := describeAll(t, n, admin.DescribeRepositoriesRequest{MaxResults: ptr(size), IncludeCached: true})
		if !slices.Equal(got, wantAll) {
			t.Errorf("includeCached, pages of %d: %v, want %v", size, got, wantAll)
		}
	}
}

// TestDescribeRepositoriesIsAlwaysAPage: asked without maxResults, with
// or without the cached repositories, describe-repositories answers at
// most 100 repositories (ECR's default page) and a nextToken to the
// rest: no request reads every repository of a large store.
func TestDescribeRepositoriesIsAlwaysAPage(t *testing.T) {
	n := admintest.New(t)
	for i := range 101 {
		if err := n.Store.PutRepository(t.Context(), &store.Repository{Name: fmt.Sprintf("private/r%04d", i), Mutability: "MUTABLE"}); err != nil {
			t.Fatal(err)
		}
	}
	n.Cache("docker-hub", "library/alpine", admintest.Epoch, admintest.NewImage("alpine", 1), "v1")
	for _, cached := range []bool{false, true} {
		var first admin.DescribeRepositoriesResponse
		n.OK("describe-repositories", admin.DescribeRepositoriesRequest{IncludeCached: cached}, &first)
		if len(first.Repositories) != 100 || first.NextToken == "" || first.Repositories[99].RepositoryName != "private/r0099" {
			t.Fatalf("includeCached %v: %d repositories, nextToken %q", cached, len(first.Repositories), first.NextToken)
		}
		var rest admin.DescribeRepositoriesResponse
		n.OK("describe-repositories", admin.DescribeRepositoriesRequest{IncludeCached: cached, NextToken: first.NextToken}, &rest)
		var names []string
		for _, r := range rest.Repositories {
			names = append(names, r.RepositoryName)
		}
		want := []string{"private/r0100"}
		if cached {
			want = append(want, "docker-hub/library/alpine")
		}
		if !slices.Equal(names, want) || rest.NextToken != "" {
			t.Fatalf("includeCached %v: the rest %v (nextToken %q), want %v", cached, names, rest.NextToken, want)
		}
	}
}

// TestPageTokens: a token is opaque, keeps its place when repositories
// are added before it, and a bad one is refused with a reason.
func TestPageTokens(t *testing.T) {
	n := admintest.New(t)
	for _, name := range []string{"private/b", "private/d", "private/f"} {
		n.Push(name, admintest.Epoch, admintest.NewImage(name, 1), "v1")
	}
	var p1 admin.DescribeRepositoriesResponse
	n.OK("describe-repositories", admin.DescribeRepositoriesRequest{MaxResults: ptr(2)}, &p1)
	if p1.NextToken == "" || strings.Contains(p1.NextToken, "private") {
		t.Fatalf("first page %+v: want an opaque nextToken", p1)
	}
	// Added before and after the page's end: the next page is what
	// follows its last entry, nothing repeated.
	n.Push("private/a", admintest.Epoch, admintest.NewImage("a", 1), "v1")
	n.Push("private/e", admintest.Epoch, admintest.NewImage("e", 1), "v1")
	var p2 admin.DescribeRepositoriesResponse
	n.OK("describe-repositories", admin.DescribeRepositoriesRequest{MaxResults: ptr(2), NextToken: p1.NextToken}, &p2)
	var got []string
	for _, r := range p2.Repositories {
		got = append(got, r.RepositoryName)
	}
	if !slices.Equal(got, []string{"private/e", "private/f"}) || p2.NextToken != "" {
		t.Errorf("second page %v (token %q), want private/e, private/f and no token", got, p2.NextToken)
	}
	for _, tc := range []struct {
		req  any
		verb string
		want string
	}{
		{admin.DescribeRepositoriesRequest{NextToken: "garbage"}, "describe-repositories", "not a token this API returned"},
		{admin.DescribeRepositoriesRequest{NextToken: p1.NextToken, IncludeCached: true}, "describe-repositories", "another listing"},
		{admin.ListImagesRequest{RepositoryName: "private/b", NextToken: p1.NextToken}, "list-images", "another listing"},
		{admin.DescribeRepositoriesRequest{MaxResults: ptr(0)}, "describe-repositories", "between 1 and 1000"},
		{admin.DescribeRepositoriesRequest{MaxResults: ptr(1001)}, "describe-repositories", "between 1 and 1000"},
		{admin.DescribeRepositoriesRequest{MaxResults: ptr(1), RepositoryNames: []string{"private/b"}}, "describe-repositories", "cannot be used with repositoryNames"},
	} {
		e := wantErr(t, n, tc.verb, tc.req, 400, admin.CodeInvalidParameter)
		if !strings.Contains(e[0].Message, tc.want) {
			t.Errorf("%s %+v: %q, want it to say %q", tc.verb, tc.req, e[0].Message, tc.want)
		}
	}
}

// TestListImagesPages: list-images pages newest push first; a page
// resumes after its last entry when newer images were pushed meanwhile.
func TestListImagesPages(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	var want []admin.ImageID
	for i := 0; i < 4; i++ {
		im := admintest.NewImage(fmt.Sprint("im", i), 1)
		n.Push("private/app", t0.Add(time.Duration(i)*time.Hour), im, "a"+fmt.Sprint(i), "b"+fmt.Sprint(i))
		want = slices.Insert(want, 0, admin.ImageID{ImageDigest: im.Digest, ImageTag: "a" + fmt.Sprint(i)},
			admin.ImageID{ImageDigest: im.Digest, ImageTag: "b" + fmt.Sprint(i)})
	}
	var whole admin.ListImagesResponse
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "private/app"}, &whole)
	if !slices.Equal(whole.ImageIDs, want) {
		t.Fatalf("whole listing %+v, want %+v", whole.ImageIDs, want)
	}
	req := admin.ListImagesRequest{RepositoryName: "private/app", MaxResults: ptr(3)}
	var got []admin.ImageID
	for i := 0; ; i++ {
		var page admin.ListImagesResponse
		n.OK("list-images", req, &page)
		if len(page.ImageIDs) > 3 {
			t.Fatalf("page %d: %d entries", i, len(page.ImageIDs))
		}
		got = append(got, page.ImageIDs...)
		if i == 0 { // a newer image now comes first, before the token
			n.Push("private/app", t0.Add(9*time.Hour), admintest.NewImage("new", 1), "new")
		}
		if page.NextToken == "" {
			break
		}
		req.NextToken = page.NextToken
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages %+v, want %+v", got, want)
	}
	raw, _ := json.Marshal(req)
	if strings.Contains(string(raw), "sha256") {
		t.Errorf("the token shows a digest: %s", raw)
	}
}
