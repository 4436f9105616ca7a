package syncer

import (
	"context"
	"errors"
	"fmt"

	"berth/errdefs"
	"berth/upstream"
)

// Pinned reports whether a rule with pin: true selects the cached image
// digest of repo at upstream up: the repository is one of the rule's and
// one of the tags the rule selects, as the store holds them now, points at
// it. It reads the store, so it holds across restarts.
func (s *Syncer) Pinned(ctx context.Context, up, repo, digest string) bool {
	router := s.o.Routes()
	for _, r := range s.o.Rules() {
		if !r.Pin || r.Upstream != up || !s.covers(router, r.Repositories, up, repo) {
			continue
		}
		sel, err := newSelector(r.Tags)
		if err != nil {
			continue
		}
		tags, err := s.o.Store.ListTags(ctx, up, repo)
		if err != nil {
			continue
		}
		for _, tag := range sel.pick(tags) {
			if t, err := s.o.Store.GetTag(ctx, up, repo, tag); err == nil && t.Digest == digest {
				return true
			}
		}
	}
	return false
}

// covers reports whether repo (a name at upstream up) is one of names,
// which are names or patterns as a rule writes them.
func (s *Syncer) covers(router *upstream.Router, names []string, up, repo string) bool {
	u := router.Upstream(up)
	if u == nil {
		return false
	}
	for _, n := range names {
		if isPattern(n) {
			if matchAny([]string{n}, repo) {
				return true
			}
			continue
		}
		if t, err := router.RouteCanonical(upstream.CanonicalName(u.Rule, n)); err == nil && t.Upstream == u && t.Repo == repo {
			return true
		}
	}
	return false
}

// Refs names the images a rule covers as the store holds them now, as
// clients pull them ("docker-hub/library/alpine:3.20"): the tags the rule
// selects, as the store holds them, of the repositories a run syncs (its
// names, and its "*" patterns matched against the upstream's catalog, by
// the run's own resolution). A repository the rule cannot resolve (the
// catalog cannot be listed, a name routes elsewhere) is an error rather
// than a bundle that silently leaves it out.
func (s *Syncer) Refs(ctx context.Context, name string) ([]string, error) {
	r, ok := s.rule(name)
	if !ok {
		return nil, errdefs.New(errdefs.ErrInvalidParameter, "there is no sync rule %q; the config's sync key lists them", name)
	}
	router := s.o.Routes()
	u := router.Upstream(r.Upstream)
	if u == nil {
		return nil, errdefs.New(errdefs.ErrInvalidParameter, "sync rule %q: upstream rule %q is not configured", name, r.Upstream)
	}
	sel, err := newSelector(r.Tags)
	if err != nil {
		return nil, err
	}
	repos, problems := repositories(ctx, router, u, r.Repositories)
	if len(problems) > 0 {
		return nil, fmt.Errorf("sync rule %q: %w", name, errors.Join(problems...))
	}
	var out []string
	for _, repo := range repos {
		tags, err := s.o.Store.ListTags(ctx, u.Rule.Name, repo.Target.Remote)
		if err != nil {
			return nil, err
		}
		for _, tag := range sel.pick(tags) {
			out = append(out, repo.Name+":"+tag)
		}
	}
	return out, nil
}
