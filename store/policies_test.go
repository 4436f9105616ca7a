package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestPolicies(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	stOpenClose(t, dir, func(s *Store) {
		if _, err := s.GetPolicy(ctx, PolicyLifecycle, "private/*"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing policy: %v", err)
		}
		if err := s.DeletePolicy(ctx, PolicyLifecycle, "private/*"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete missing policy: %v", err)
		}
		for _, name := range []string{"private/*", "private/app", "*", "private"} {
			if err := s.PutPolicy(ctx, PolicyLifecycle, name, []byte(`{"n":"`+name+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutPolicy(ctx, PolicyCacheRule, "ghcr", []byte(`{"prefix":"ghcr"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPolicy(ctx, PolicyLifecycle, "private/app", []byte(`{"n":"replaced"}`)); err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][2]string{{"", "x"}, {PolicyLifecycle, ""}, {PolicyLifecycle, "a\x00b"}, {"a\x00", "x"}} {
			if err := s.PutPolicy(ctx, bad[0], bad[1], nil); err == nil {
				t.Fatalf("PutPolicy(%q, %q) accepted", bad[0], bad[1])
			}
		}
	})
	stOpenClose(t, dir, func(s *Store) {
		got, err := s.ListPolicies(ctx, PolicyLifecycle)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Name)
		}
		if !slices.Equal(names, []string{"*", "private", "private/*", "private/app"}) {
			t.Fatalf("names %q", names)
		}
		if v, err := s.GetPolicy(ctx, PolicyLifecycle, "private/app"); err != nil || string(v) != `{"n":"replaced"}` {
			t.Fatalf("get %s, %v", v, err)
		}
		rules, _ := s.ListPolicies(ctx, PolicyCacheRule)
		if len(rules) != 1 || rules[0].Name != "ghcr" || string(rules[0].Value) != `{"prefix":"ghcr"}` {
			t.Fatalf("rules %+v", rules)
		}
		if err := s.DeletePolicy(ctx, PolicyLifecycle, "private"); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ListPolicies(ctx, PolicyLifecycle)
		if len(got) != 3 {
			t.Fatalf("after delete %+v", got)
		}
		if _, err := s.ListPolicies(ctx, ""); err == nil {
			t.Fatal("empty kind listed")
		}
		// A prefix reads the names that begin with it, of that kind only.
		got, err = s.ListPoliciesPrefix(ctx, PolicyLifecycle, "private/")
		if err != nil || len(got) != 2 || got[0].Name != "private/*" || got[1].Name != "private/app" || string(got[1].Value) != `{"n":"replaced"}` {
			t.Fatalf("prefix private/: %+v, %v", got, err)
		}
		if got, err = s.ListPoliciesPrefix(ctx, PolicyCacheRule, "private"); err != nil || len(got) != 0 {
			t.Fatalf("prefix of another kind: %+v, %v", got, err)
		}
		if _, err := s.ListPoliciesPrefix(ctx, PolicyLifecycle, "a\x00"); err == nil {
			t.Fatal("a prefix with NUL listed")
		}
	})
}

func TestPurgeRepository(t *testing.T) {
	s := stOpen(t, t.TempDir())
	ctx := context.Background()
	d1, d2 := stDigest(1), stDigest(2)
	now := time.Now()
	for _, repo := range []string{"a", "a/b", "ab"} {
		if err := s.PutRepository(ctx, &Repository{Name: repo, CreatedAt: now, Mutability: "MUTABLE"}); err != nil {
			t.Fatal(err)
		}
		b := s.NewBatch()
		for _, err := range []error{
			b.PutImage(LocalKey(repo), d1, Image{PushedAt: now}),
			b.PutTag("", repo, "v1", Tag{Digest: d1, FetchedAt: now}),
			b.Link(LocalKey(repo), d2),
			b.PutReferrer(LocalKey(repo), d1, d2, []byte("{}")),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PurgeRepository(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeRepository(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purging again: %v", err)
	}
	if _, err := s.GetRepository(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record: %v", err)
	}
	for repo, want := range map[string]int{"a": 0, "a/b": 1, "ab": 1} {
		imgs, _ := s.ListImages(ctx, LocalKey(repo))
		tags, _ := s.ListTags(ctx, "", repo)
		refs, _ := s.ListReferrers(ctx, LocalKey(repo), d1)
		linked, _, _ := s.LinkState(ctx, LocalKey(repo), d2)
		if len(imgs) != want || len(tags) != want || len(refs) != want || linked != (want == 1) {
			t.Fatalf("%s: images %d tags %d referrers %d linked %v, want %d", repo, len(imgs), len(tags), len(refs), linked, want)
		}
	}
	names, _ := s.ListRepositories(ctx)
	if !slices.Equal(names, []string{"a/b", "ab"}) {
		t.Fatalf("repositories %v", names)
	}
}
