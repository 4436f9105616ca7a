package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// pagesAll reads a listing page by page, n at a time, the way a client
// follows tokens: after is the last entry of the previous page.
func pagesAll[T comparable](t *testing.T, n int, page func(after T) ([]T, bool, error)) []T {
	t.Helper()
	var all []T
	var after T
	for i := 0; ; i++ {
		p, more, err := page(after)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > n {
			t.Fatalf("page %d has %d entries, more than %d", i, len(p), n)
		}
		all = append(all, p...)
		if !more {
			return all
		}
		if len(p) == 0 {
			t.Fatalf("page %d is empty but says more follow", i)
		}
		after = p[len(p)-1]
	}
}

func TestRepositoriesAndTagsPages(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	var names, tags []string
	for i := 0; i < 25; i++ {
		names = append(names, fmt.Sprintf("team/app%02d", i))
		tags = append(tags, fmt.Sprintf("v%02d", i))
		if err := s.PutRepository(ctx, &Repository{Name: names[i]}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTag(ctx, "", "team/app00", tags[i], Tag{Digest: stDigest(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A repository whose name extends another's, and a tag of another
	// repository with the same prefix, stay out of each other's pages.
	if err := s.PutTag(ctx, "", "team/app00x", "zz", Tag{Digest: stDigest(1)}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 7, 25, 100} {
		got := pagesAll(t, n, func(after string) ([]string, bool, error) { return s.RepositoriesPage(ctx, after, n) })
		if !slices.Equal(got, names) {
			t.Errorf("repositories in pages of %d: %v", n, got)
		}
		got = pagesAll(t, n, func(after string) ([]string, bool, error) { return s.TagsPage(ctx, "", "team/app00", after, n) })
		if !slices.Equal(got, tags) {
			t.Errorf("tags in pages of %d: %v", n, got)
		}
	}
	// A page resumes after its last entry even when that entry is gone
	// and others were added before it.
	if err := s.DeleteTag(ctx, "", "team/app00", "v05"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTag(ctx, "", "team/app00", "v01a", Tag{Digest: stDigest(1)}); err != nil {
		t.Fatal(err)
	}
	p, more, err := s.TagsPage(ctx, "", "team/app00", "v05", 2)
	if err != nil || !more || !slices.Equal(p, []string{"v06", "v07"}) {
		t.Errorf("page after a deleted tag: %v more=%v err=%v", p, more, err)
	}
}

func TestImageRepositoriesPage(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	var want []RepoKey
	for i := 0; i < 6; i++ {
		want = append(want, CachedKey("hub", fmt.Sprintf("library/r%d", i)))
	}
	want = append(want, CachedKey("quay", "org/x"), LocalKey("private/a"), LocalKey("private/a/b"))
	b := s.NewBatch()
	for _, rk := range want {
		for j := 0; j < 3; j++ { // several images each: one entry per repository
			if err := b.PutImage(rk, stDigest(j), Image{PushedAt: time.Unix(1, 0)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 4, 100} {
		got := pagesAll(t, n, func(after RepoKey) ([]RepoKey, bool, error) { return s.ImageRepositoriesPage(ctx, after, false, n) })
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v", n, got)
		}
		got = pagesAll(t, n, func(after RepoKey) ([]RepoKey, bool, error) { return s.ImageRepositoriesPage(ctx, after, true, n) })
		if !slices.Equal(got, want[:7]) {
			t.Errorf("cached, pages of %d: %v", n, got)
		}
	}
	if ups, err := s.CachedUpstreams(ctx); err != nil || !slices.Equal(ups, []string{"hub", "quay"}) {
		t.Errorf("CachedUpstreams = %v, %v", ups, err)
	}
	// A rule's repositories from the start: after the key with no name.
	got, _, err := s.ImageRepositoriesPage(ctx, CachedKey("quay", ""), true, 5)
	if err != nil || !slices.Equal(got, want[6:7]) {
		t.Errorf("quay's repositories: %v, %v", got, err)
	}
	if n, err := s.CountImages(ctx, LocalKey("private/a")); err != nil || n != 3 {
		t.Errorf("CountImages = %d, %v; want 3", n, err)
	}
}
