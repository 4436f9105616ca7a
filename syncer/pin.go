package syncer

import (
	"context"

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
