package admin

import (
	"berth/internal/wildcard"
	"berth/reclaim"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth/lifecycle"
	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// policyRecord is a lifecycle policy as stored (store.PolicyLifecycle).
type policyRecord struct {
	Text            string    `json:"lifecyclePolicyText"`
	UpdatedAt       time.Time `json:"updatedAt"`
	LastEvaluatedAt time.Time `json:"lastEvaluatedAt,omitzero"`
}

// scoped is a stored policy with the scope (name or pattern) it is set on.
type scoped struct {
	scope  string
	rec    policyRecord
	policy *lifecycle.Policy
	err    error // the stored text no longer parses
}

func (p *scoped) response(name string) *LifecyclePolicy {
	return &LifecyclePolicy{RepositoryName: name, LifecyclePolicyText: p.rec.Text, PolicyScope: p.scope,
		LastEvaluatedAt: timePtr(p.rec.LastEvaluatedAt), UpdatedAt: timePtr(p.rec.UpdatedAt)}
}

// policySet is every stored policy.
type policySet []*scoped

func isPattern(scope string) bool { return strings.Contains(scope, "*") }

// matchScope reports whether a repository name is in a scope: the name
// itself, or a pattern where '*' matches any run of characters, '/'
// included.
func matchScope(scope, name string) bool {
	if !isPattern(scope) {
		return scope == name
	}
	return wildcard.Match(scope, name)
}

// moreSpecific reports whether pattern a beats pattern b: more literal
// characters, then fewer wildcards, then byte order.
func moreSpecific(a, b string) bool {
	wa, wb := strings.Count(a, "*"), strings.Count(b, "*")
	if la, lb := len(a)-wa, len(b)-wb; la != lb {
		return la > lb
	}
	if wa != wb {
		return wa < wb
	}
	return a < b
}

// effective is the policy that applies to a repository: its own, or the
// most specific pattern matching it; nil when none does.
func (ps policySet) effective(name string) *scoped {
	var best *scoped
	for _, p := range ps {
		if p.scope == name {
			return p
		}
		if isPattern(p.scope) && matchScope(p.scope, name) && (best == nil || moreSpecific(p.scope, best.scope)) {
			best = p
		}
	}
	return best
}

// get is the policy set on exactly scope.
func (ps policySet) get(scope string) *scoped {
	for _, p := range ps {
		if p.scope == scope {
			return p
		}
	}
	return nil
}

// with returns the set with scope's policy replaced (for previews).
func (ps policySet) with(p *scoped) policySet {
	out := slices.DeleteFunc(slices.Clone(ps), func(q *scoped) bool { return q.scope == p.scope })
	return append(out, p)
}

func (s *Service) loadPolicies(ctx context.Context) (policySet, error) {
	entries, err := s.o.Store.ListPolicies(ctx, store.PolicyLifecycle)
	if err != nil {
		return nil, err
	}
	ps := make(policySet, 0, len(entries))
	for _, e := range entries {
		p := &scoped{scope: e.Name}
		if err := json.Unmarshal(e.Value, &p.rec); err != nil {
			p.err = fmt.Errorf("corrupt record: %w", err)
		} else {
			p.policy, p.err = lifecycle.Parse([]byte(p.rec.Text))
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// scope checks a repository name or pattern and returns it as stored: a
// name is resolved to the one clients use; a local repository must exist
// when mustExist.
func (s *Service) scope(ctx context.Context, name string, mustExist bool) (string, error) {
	const field = "repositoryName"
	if name == "" {
		return "", invalidf(field, "required")
	}
	if isPattern(name) {
		if !registry.ValidName(strings.ReplaceAll(name, "*", "a")) {
			return "", invalidf(field, "%q is not a repository name pattern (a name where * matches any characters, e.g. private/*)", name)
		}
		return name, nil
	}
	ir, err := s.target(field, name)
	if err != nil {
		return "", err
	}
	if mustExist && !ir.Cached() {
		if _, err := s.o.Repos.Repository(ctx, ir.Key.Name); err != nil {
			return "", err
		}
	}
	return ir.Name, nil
}

// parsePolicy validates a policy text, naming every invalid field.
func parsePolicy(text string) (*lifecycle.Policy, error) {
	if text == "" {
		return nil, invalidf("lifecyclePolicyText", "required")
	}
	p, err := lifecycle.Parse([]byte(text))
	if err == nil {
		return p, nil
	}
	fes := lifecycle.FieldErrors(err)
	if len(fes) == 0 {
		return nil, invalidf("lifecyclePolicyText", "%v", err)
	}
	var entries []ErrorEntry
	for _, fe := range fes {
		field := "lifecyclePolicyText"
		if fe.Path != "" {
			field += "." + fe.Path
		}
		entries = append(entries, ErrorEntry{Code: CodeInvalidParameter, Field: field, Message: "lifecyclePolicyText: " + fe.Error()})
	}
	e := &Error{Status: 400, Code: entries[0].Code, Message: entries[0].Message, Field: entries[0].Field, More: entries[1:]}
	return nil, e
}

func (s *Service) putLifecyclePolicy(ctx context.Context, req *PutLifecyclePolicyRequest) (*LifecyclePolicy, error) {
	scope, err := s.scope(ctx, req.RepositoryName, true)
	if err != nil {
		return nil, err
	}
	if _, err := parsePolicy(req.LifecyclePolicyText); err != nil {
		return nil, err
	}
	rec := policyRecord{Text: req.LifecyclePolicyText, UpdatedAt: s.o.Now().UTC()}
	v, _ := json.Marshal(rec)
	if err := s.o.Store.PutPolicy(ctx, store.PolicyLifecycle, scope, v); err != nil {
		return nil, err
	}
	s.log.Info("lifecycle policy set", zap.String("scope", scope))
	return (&scoped{scope: scope, rec: rec}).response(scope), nil
}

func (s *Service) getLifecyclePolicy(ctx context.Context, req *RepositoryNameRequest) (*LifecyclePolicy, error) {
	scope, err := s.scope(ctx, req.RepositoryName, true)
	if err != nil {
		return nil, err
	}
	ps, err := s.loadPolicies(ctx)
	if err != nil {
		return nil, err
	}
	p := ps.get(scope)
	if p == nil && !isPattern(scope) {
		p = ps.effective(scope)
	}
	if p == nil {
		return nil, notFound(CodeLifecyclePolicyNotFound, "no lifecycle policy applies to %s", scope)
	}
	return p.response(scope), nil
}

func (s *Service) deleteLifecyclePolicy(ctx context.Context, req *RepositoryNameRequest) (*LifecyclePolicy, error) {
	scope, err := s.scope(ctx, req.RepositoryName, false)
	if err != nil {
		return nil, err
	}
	ps, err := s.loadPolicies(ctx)
	if err != nil {
		return nil, err
	}
	p := ps.get(scope)
	if p == nil {
		msg := fmt.Sprintf("no lifecycle policy is set on %s", scope)
		if e := ps.effective(scope); e != nil {
			msg += fmt.Sprintf(" (pattern %s applies to it; delete that one to remove it)", e.scope)
		}
		return nil, notFound(CodeLifecyclePolicyNotFound, "%s", msg)
	}
	if err := s.o.Store.DeletePolicy(ctx, store.PolicyLifecycle, scope); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(CodeLifecyclePolicyNotFound, "no lifecycle policy is set on %s", scope)
		}
		return nil, err
	}
	s.log.Info("lifecycle policy deleted", zap.String("scope", scope))
	return p.response(scope), nil
}

func (s *Service) describeLifecyclePolicies(ctx context.Context, _ *struct{}) (*DescribeLifecyclePoliciesResponse, error) {
	ps, err := s.loadPolicies(ctx)
	if err != nil {
		return nil, err
	}
	out := &DescribeLifecyclePoliciesResponse{LifecyclePolicies: []LifecyclePolicy{}}
	for _, p := range ps {
		out.LifecyclePolicies = append(out.LifecyclePolicies, *p.response(p.scope))
	}
	return out, nil
}

// allRepositories lists every repository lifecycle policies may apply to:
// the local ones and the cached ones holding images, by the names clients
// use.
func (s *Service) allRepositories(ctx context.Context) ([]reclaim.ImageRepo, error) {
	if s.repoWalks != nil {
		s.repoWalks.Add(1)
	}
	names, err := s.o.Store.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	var out []reclaim.ImageRepo
	for _, n := range names {
		out = append(out, reclaim.LocalRepo(n))
	}
	stored, err := s.o.Reclaim.StoreRepositories(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range stored {
		if r.Cached() {
			ir := r.ImageRepo
			ir.Name = s.cachedName(ir.Key.Upstream, ir.Key.Name)
			out = append(out, ir)
		}
	}
	return out, nil
}

// lifecycleTargets are the repositories a lifecycle run in scope
// evaluates: every repository ("" or a pattern, which may match any), or
// the one named, read alone.
func (s *Service) lifecycleTargets(ctx context.Context, scope string) ([]reclaim.ImageRepo, error) {
	if scope != "" && !isPattern(scope) {
		ir, err := s.target("repositoryName", scope)
		if err != nil {
			return nil, err
		}
		return []reclaim.ImageRepo{ir}, nil
	}
	all, err := s.allRepositories(ctx)
	if err != nil || scope == "" {
		return all, err
	}
	var out []reclaim.ImageRepo
	for _, ir := range all {
		if matchScope(scope, ir.Name) {
			out = append(out, ir)
		}
	}
	return out, nil
}

func previewResult(ir reclaim.ImageRepo, r lifecycle.Result) PreviewResult {
	return PreviewResult{RepositoryName: ir.Name, ImageDigest: r.Digest, ImageTags: r.Tags, ImagePushedAt: timePtr(r.PushedAt),
		Action: PreviewAction{Type: "EXPIRE"}, AppliedRulePriority: r.RulePriority, ImageSizeInBytes: r.Size, Reason: r.Reason}
}

// RunLifecycle evaluates every lifecycle policy now and expires what it
// selects, in local and cached repositories; then, when local images went,
// garbage collection reclaims their blobs. The daemon calls it every
// local.lifecycleInterval. One run happens at a time.
func (s *Service) RunLifecycle(ctx context.Context) (LifecycleRun, error) {
	return s.runLifecycleIn(ctx, "")
}

// runLifecycleIn runs the policies over the repositories in scope ("" for
// all).
func (s *Service) runLifecycleIn(ctx context.Context, scope string) (LifecycleRun, error) {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	start := time.Now()
	now := s.o.Now()
	run := LifecycleRun{StartedAt: now.UTC(), ExpiredImages: []PreviewResult{}}
	ps, err := s.loadPolicies(ctx)
	if err != nil || len(ps) == 0 {
		return run, err
	}
	repos, err := s.lifecycleTargets(ctx, scope)
	if err != nil {
		return run, err
	}
	var refs []reclaim.ImageRef
	used := map[string]bool{}
	for _, ir := range repos {
		p := ps.effective(ir.Name)
		if p == nil {
			continue
		}
		if p.err != nil {
			run.Errors = append(run.Errors, fmt.Sprintf("%s: the policy set on %s is invalid: %v", ir.Name, p.scope, p.err))
			continue
		}
		images, err := s.o.Reclaim.Images(ctx, ir)
		if err != nil {
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			run.Errors = append(run.Errors, fmt.Sprintf("%s: %v", ir.Name, err))
			continue
		}
		if ir.Cached() && len(images) == 0 {
			continue // a cached repository is one while it holds images
		}
		used[p.scope] = true
		run.RepositoriesEvaluated++
		run.ImagesEvaluated += len(images)
		for _, r := range reclaim.Plan(p.policy, images, now) {
			refs = append(refs, reclaim.ImageRef{Repo: ir, Digest: r.Digest})
			run.ExpiredImages = append(run.ExpiredImages, previewResult(ir, r))
		}
	}
	rep, err := s.o.Reclaim.ExpireImages(ctx, refs)
	run.Expired = rep
	if len(refs) > 0 {
		s.storeChanged()
	}
	if err != nil {
		return run, err
	}
	if rep.LocalImagesExpired > 0 {
		gc, err := s.o.Reclaim.GC(ctx, s.live().GCGrace)
		if err != nil {
			return run, fmt.Errorf("garbage collection after the lifecycle run: %w", err)
		}
		run.GC = &gc
	}
	for sc := range used {
		p := ps.get(sc)
		p.rec.LastEvaluatedAt = now.UTC()
		v, _ := json.Marshal(p.rec)
		// A policy replaced or deleted meanwhile is not resurrected.
		if cur, err := s.o.Store.GetPolicy(ctx, store.PolicyLifecycle, sc); err == nil {
			var c policyRecord
			if json.Unmarshal(cur, &c) == nil && c.Text == p.rec.Text && c.UpdatedAt.Equal(p.rec.UpdatedAt) {
				if err := s.o.Store.PutPolicy(ctx, store.PolicyLifecycle, sc, v); err != nil {
					run.Errors = append(run.Errors, fmt.Sprintf("record the evaluation of %s: %v", sc, err))
				}
			}
		}
	}
	run.DurationSeconds = time.Since(start).Seconds()
	s.log.Info("lifecycle policies evaluated", zap.Int("repositories", run.RepositoriesEvaluated),
		zap.Int("images", run.ImagesEvaluated), zap.Int("expired", rep.ImagesExpired),
		zap.Int64("cachedBytesFreed", rep.BytesFreed), zap.Strings("errors", run.Errors))
	return run, nil
}

func (s *Service) runLifecycle(ctx context.Context, req *RunLifecycleRequest) (*LifecycleRun, error) {
	scope := ""
	if req.RepositoryName != "" {
		var err error
		if scope, err = s.scope(ctx, req.RepositoryName, true); err != nil {
			return nil, err
		}
	}
	// Requests share runs (gc.go); the run goes on if the request leaves.
	run, err := share(s, s.lifecycle, ctx, scope, func(ctx context.Context) (LifecycleRun, error) {
		return s.runLifecycleIn(ctx, scope)
	})
	if err != nil {
		return nil, err
	}
	return &run, nil
}
