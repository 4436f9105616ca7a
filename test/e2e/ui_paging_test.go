package e2e

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// pagingRepos is how many local repositories TestStatusPagePagesRepositories
// pushes: more than the page's 50 (REPO_PAGE in app.js), so there are two
// pages of repositories.
const pagingRepos = 55

// repoView is what the page shows of its repositories and images.
type repoView struct {
	Info, PageInfo string
	Prev, Next     bool // the repository buttons are enabled
	Rows           [][2]string
}

// repoViewJS reads a repoView off the page: the images table's rows as
// repository and digest.
const repoViewJS = `({Info: document.getElementById("repo-info").textContent,
	PageInfo: document.getElementById("page-info").textContent,
	Prev: !document.getElementById("repo-prev").disabled,
	Next: !document.getElementById("repo-next").disabled,
	Rows: [...document.querySelectorAll("#images tbody tr")].map(r => [r.dataset.repository, r.dataset.digest])})`

// TestStatusPagePagesRepositories: with more local repositories than the
// page reads at once, the page lists the images of the first 50, says
// there are more, and its repository buttons move to the rest and back,
// a double click moving one page.
func TestStatusPagePagesRepositories(t *testing.T) {
	t.Parallel()
	users := map[string]string{"root": "root-secret-pw"}
	b := StartBerth(t, "", fmt.Sprintf("local:\n  prefixes: [private]\n  autoCreate: true\nrateLimit:\n  disabled: true\n"+
		"auth:\n  enabled: true\n  htpasswd: %q\n  groups: {admins: [root]}\n", auHtpasswd(t, users)))
	repos, digests := pushPagingRepos(t, b, crane.WithAuth(&authn.Basic{Username: "root", Password: users["root"]}))

	ctx := tab(t, startBrowser(t), "root", users["root"])
	open(t, ctx, b.AdminURL+"/ui/")
	firstPage := func(what string) {
		t.Helper()
		waitFor(t, ctx, what, `document.getElementById("page-info").textContent.startsWith("50 images ")`)
		v := eval[repoView](t, ctx, repoViewJS)
		if v.Info != "repositories 1–50 of more" || v.Prev || !v.Next {
			t.Fatalf("%s: the repositories read %q, ‹ Repositories enabled %v, Repositories › enabled %v; want %q, disabled, enabled",
				what, v.Info, v.Prev, v.Next, "repositories 1–50 of more")
		}
		checkRows(t, what, v.Rows, repos[:25], digests)
	}
	firstPage("the first page of repositories")
	// None of the second page's repositories is listed, whatever the page
	// of the images table: a filter for them finds nothing.
	setSearch(t, ctx, "private/r5")
	waitFor(t, ctx, "no image of private/r5x", `document.getElementById("page-info").textContent.startsWith("0 images ") &&
		!document.getElementById("images-empty").hidden && document.querySelectorAll("#images tbody tr").length === 0`)
	setSearch(t, ctx, "")
	waitFor(t, ctx, "the filter cleared", `document.getElementById("page-info").textContent.startsWith("50 images ")`)

	secondPage := func(what string) {
		t.Helper()
		waitFor(t, ctx, what, `document.getElementById("page-info").textContent.startsWith("5 images ")`)
		v := eval[repoView](t, ctx, repoViewJS)
		want := fmt.Sprintf("repositories 51–%d", pagingRepos)
		if v.Info != want || !v.Prev || v.Next {
			t.Fatalf("%s: the repositories read %q, ‹ Repositories enabled %v, Repositories › enabled %v; want %q, enabled, disabled",
				what, v.Info, v.Prev, v.Next, want)
		}
		checkRows(t, what, v.Rows, repos[50:], digests)
	}
	click(t, ctx, "#repo-next")
	secondPage("the second page of repositories")
	click(t, ctx, "#repo-prev")
	firstPage("the first page again")

	// A double click, both clicks before the page has read the next page,
	// moves one page, not two.
	eval[bool](t, ctx, `(b => { b.click(); b.click(); return true })(document.getElementById("repo-next"))`)
	secondPage("the second page after a double click")
}

// pushPagingRepos pushes a one-layer image to each of pagingRepos local
// repositories, private/r00 onwards, and returns their names and each
// one's image digest.
func pushPagingRepos(t *testing.T, b *Berth, auth crane.Option) ([]string, map[string]string) {
	t.Helper()
	repos := make([]string, pagingRepos)
	imgs := make([]v1.Image, pagingRepos)
	digests := map[string]string{}
	for i := range repos {
		repos[i] = fmt.Sprintf("private/r%02d", i)
		imgs[i] = realImage(t, pushSeed(), 1, runtime.GOARCH, true)
		digests[repos[i]] = imageDigest(t, imgs[i])
	}
	var g errgroup.Group
	g.SetLimit(4)
	for i, repo := range repos {
		g.Go(func() error {
			if err := crane.Push(imgs[i], b.Addr+"/"+repo+":v1", crane.Insecure, auth, crane.WithContext(context.Background())); err != nil {
				return fmt.Errorf("crane push %s: %w", repo, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return repos, digests
}

// checkRows fails unless the images table's rows are want's images, one
// each, in order.
func checkRows(t *testing.T, what string, rows [][2]string, want []string, digests map[string]string) {
	t.Helper()
	var got []string
	for _, r := range rows {
		if r[1] != digests[r[0]] {
			t.Errorf("%s: a row lists %s@%s; that repository holds %s", what, r[0], r[1], digests[r[0]])
		}
		got = append(got, r[0])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: the images table lists the repositories %v, want %v", what, got, want)
	}
}

// setSearch types s into the images' filter.
func setSearch(t *testing.T, ctx context.Context, s string) {
	t.Helper()
	eval[bool](t, ctx, fmt.Sprintf(`(e => { e.value = %s; e.dispatchEvent(new Event("input")); return true })(document.getElementById("search"))`, jsString(s)))
}
