package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"berth/config"
	"berth/internal/oci"
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
	// seen are the manifests pulled in this run, "repo@digest": an
	// index an upstream makes refer to itself is followed once.
	seen map[string]bool
}

// maxDepth bounds how deep a run follows indexes and referrers.
const maxDepth = 8

// runRule runs the named rule once and records its outcome.
func (s *Syncer) runRule(ctx context.Context, name string) Run {
	run := Run{Started: s.o.Now().UTC()}
	rule, ok := s.rule(name)
	if !ok {
		run.Errors = []string{"the rule is no longer configured"}
		run.Finished = s.o.Now().UTC()
		return run
	}
	j := &job{s: s, rule: rule, run: &run, seen: map[string]bool{}}
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
		if err := j.image(ctx, repo, tag, j.rule.Referrers, 0); err != nil {
			j.fail(fmt.Errorf("%s:%s: %w", repo.Name, tag, err))
			continue
		}
		j.run.Images++
		j.s.metrics.image(j.rule.Name)
	}
}

// image pulls a manifest by ref, then its platforms' children (an index)
// or its config and layers, and with referrers the manifests that refer
// to it; depth is how many manifests led to it.
func (j *job) image(ctx context.Context, repo registry.Repo, ref string, referrers bool, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s is nested more than %d manifests deep; not followed", ref, maxDepth)
	}
	if registry.IsDigest(ref) && j.seen[repo.Name+"@"+ref] {
		return nil
	}
	req := registry.ManifestRequest{Repo: repo, Reference: ref, Accept: strings.Split(oci.AcceptManifests, ", ")}
	if registry.IsDigest(ref) {
		d, err := registry.ParseDigest(ref)
		if err != nil {
			return err
		}
		req.Digest = d
	}
	m, err := j.s.o.Backend.GetManifest(ctx, req)
	if err != nil {
		return err
	}
	if m.Source != registry.SourceStore && m.Source != registry.SourceStale {
		j.bytes(int64(len(m.Body)))
	}
	if j.seen[repo.Name+"@"+m.Digest.String()] {
		return nil
	}
	j.seen[repo.Name+"@"+m.Digest.String()] = true
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		return fmt.Errorf("manifest %s is not JSON: %w", m.Digest, err)
	}
	var errs []error
	for _, child := range doc.Manifests {
		p := child.Platform
		if p == nil && len(j.rule.Platforms) > 0 || p != nil && !matchPlatform(j.rule.Platforms, p.OS, p.Architecture, p.Variant) {
			continue
		}
		errs = append(errs, j.image(ctx, repo, child.Digest, false, depth+1))
	}
	for _, b := range doc.Refs() {
		if !oci.IsManifest(b.MediaType) && !oci.NonDistributable(b.MediaType) {
			errs = append(errs, j.blob(ctx, repo, b.Digest))
		}
	}
	if referrers {
		errs = append(errs, j.referrers(ctx, repo, m.Digest, depth+1))
	}
	return errors.Join(errs...)
}

// blob pulls one blob through; one the node holds is not read.
func (j *job) blob(ctx context.Context, repo registry.Repo, digest string) error {
	d, err := registry.ParseDigest(digest)
	if err != nil {
		return err
	}
	b, err := j.s.o.Backend.GetBlob(ctx, registry.BlobRequest{Repo: repo, Digest: d})
	if err != nil {
		return err
	}
	if b.Source() == registry.SourceStore {
		return nil
	}
	rc, err := b.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	j.bytes(n)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	return nil
}

// referrers pulls the manifests that refer to d (signatures, SBOMs).
func (j *job) referrers(ctx context.Context, repo registry.Repo, d registry.Digest, depth int) error {
	rl, ok := j.s.o.Backend.(referrersLister)
	if !ok {
		return nil
	}
	descs, err := rl.Referrers(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("referrers of %s: %w", d, err)
	}
	var errs []error
	for _, r := range descs {
		errs = append(errs, j.image(ctx, repo, r.Digest.String(), false, depth))
	}
	return errors.Join(errs...)
}

func (j *job) bytes(n int64) {
	j.run.Bytes += n
	j.s.metrics.bytes(j.rule.Name, n)
}
