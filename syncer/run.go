package syncer

import (
	"context"
	"fmt"

	"berth/config"
	"berth/registry"
	"berth/upstream"

	"go.uber.org/zap"
)

// maxErrors bounds the errors a run keeps for describe-sync.
const maxErrors = 20

// job is one run of one rule.
type job struct {
	s    *Syncer
	rule config.SyncRule
	run  *Run
	sel  selector
	fill *filler
}

// runRule runs the named rule once and records its outcome.
func (s *Syncer) runRule(ctx context.Context, name string) Run {
	run := Run{Started: s.o.Now().UTC()}
	rule, ok := s.rule(name)
	if !ok {
		run.Errors = []string{"the rule is no longer configured"}
		run.Finished = s.o.Now().UTC()
		return run
	}
	j := &job{s: s, rule: rule, run: &run}
	j.fill = &filler{backend: s.o.Backend, platforms: rule.Platforms, bytes: j.bytes, seen: map[string]bool{}}
	if err := j.all(ctx); err != nil {
		j.fail(err)
	}
	run.Finished = s.o.Now().UTC()
	s.metrics.observe(rule.Name, run)
	s.log.Info("sync run ended", zap.String("rule", name), zap.Int("images", run.Images), zap.Int64("bytes", run.Bytes),
		zap.Int("errors", len(run.Errors)), zap.Duration("duration", run.Finished.Sub(run.Started)))
	return run
}

func (j *job) fail(err error) {
	if len(j.run.Errors) < maxErrors {
		j.run.Errors = append(j.run.Errors, err.Error())
	}
	j.s.metrics.errors(j.rule.Name)
	j.s.log.Warn("sync", zap.String("rule", j.rule.Name), zap.Error(err))
}

// all syncs every repository of the rule.
func (j *job) all(ctx context.Context) error {
	sel, err := newSelector(j.rule.Tags)
	if err != nil {
		return err
	}
	j.sel = sel
	router := j.s.o.Routes()
	u := router.Upstream(j.rule.Upstream)
	if u == nil {
		return fmt.Errorf("upstream rule %q is not configured", j.rule.Upstream)
	}
	repos, problems := repositories(ctx, router, u, j.rule.Repositories)
	for _, err := range problems {
		j.fail(err)
	}
	for _, repo := range repos {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		j.repository(ctx, repo)
	}
	return nil
}

// repositories resolves a rule's names and patterns (matched against the
// upstream's catalog) to repositories of the upstream, as the registry
// would resolve them for a client: what a run syncs and export
// --sync-rule exports. It returns what it resolved and why it could not
// resolve the rest.
func repositories(ctx context.Context, router *upstream.Router, u *upstream.Upstream, rule []string) ([]registry.Repo, []error) {
	var problems []error
	var names, patterns []string
	for _, r := range rule {
		if isPattern(r) {
			patterns = append(patterns, r)
		} else {
			names = append(names, r)
		}
	}
	if len(patterns) > 0 {
		cat, err := u.Catalog(ctx)
		if err != nil {
			problems = append(problems, fmt.Errorf("list the repositories of upstream %s for %v: %w", u.Rule.Name, patterns, err))
		}
		for _, name := range cat {
			if matchAny(patterns, name) {
				names = append(names, name)
			}
		}
	}
	var out []registry.Repo
	seen := map[string]bool{}
	for _, name := range names {
		t, err := router.RouteCanonical(upstream.CanonicalName(u.Rule, name))
		if err != nil || t.Upstream != u {
			problems = append(problems, fmt.Errorf("repository %s does not route to upstream %s", name, u.Rule.Name))
			continue
		}
		if seen[t.Repo] {
			continue
		}
		seen[t.Repo] = true
		out = append(out, Repo(t))
	}
	return out, problems
}

// Repo is the registry's repository of an upstream target, resolved as a
// client's request is.
func Repo(t upstream.Target) registry.Repo {
	name := t.Canonical()
	return registry.Repo{Name: name, Target: registry.Target{Name: name, Upstream: t.Upstream.Rule.Name, Remote: t.Repo}}
}

// repository syncs the selected tags of one repository.
func (j *job) repository(ctx context.Context, repo registry.Repo) {
	tags, err := j.s.o.Backend.ListTags(ctx, repo)
	if err != nil {
		j.fail(fmt.Errorf("list the tags of %s: %w", repo.Name, err))
		return
	}
	for _, tag := range j.sel.pick(tags) {
		if ctx.Err() != nil {
			return
		}
		if _, err := j.fill.image(ctx, repo, tag, j.rule.Referrers, 0); err != nil {
			j.fail(fmt.Errorf("%s:%s: %w", repo.Name, tag, err))
			continue
		}
		j.run.Images++
		j.s.metrics.image(j.rule.Name)
	}
}

func (j *job) bytes(n int64) {
	j.run.Bytes += n
	j.s.metrics.bytes(j.rule.Name, n)
}
