package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"berth/lifecycle"
	"berth/reclaim"

	"go.uber.org/zap"
)

// preview is one lifecycle policy preview, computed in the background.
type preview struct {
	mu       sync.Mutex
	resp     LifecyclePolicyPreview
	finished time.Time // zero while it runs
}

func (p *preview) snapshot() *LifecyclePolicyPreview {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.resp
	out.PreviewResults = slices.Clone(p.resp.PreviewResults)
	if p.resp.Progress != nil {
		pr := *p.resp.Progress
		out.Progress = &pr
	}
	return &out
}

// startLifecyclePolicyPreview starts computing what a policy would expire,
// changing nothing. For a repository it is the policy that applies to it
// (its own or a pattern's); for a pattern, the pattern's policy over the
// repositories it governs (those it matches that have no more specific
// policy). A lifecyclePolicyText previews that text as if it were put on
// the name or pattern.
func (s *Service) startLifecyclePolicyPreview(ctx context.Context, req *StartLifecyclePolicyPreviewRequest) (*LifecyclePolicyPreview, error) {
	scope, err := s.scope(ctx, req.RepositoryName, true)
	if err != nil {
		return nil, err
	}
	ps, err := s.loadPolicies(ctx)
	if err != nil {
		return nil, err
	}
	if req.LifecyclePolicyText != "" {
		pol, err := parsePolicy(req.LifecyclePolicyText)
		if err != nil {
			return nil, err
		}
		ps = ps.with(&scoped{scope: scope, rec: policyRecord{Text: req.LifecyclePolicyText}, policy: pol})
	}
	var p *scoped
	if isPattern(scope) {
		p = ps.get(scope)
	} else {
		p = ps.effective(scope)
	}
	switch {
	case p == nil:
		return nil, notFound(CodeLifecyclePolicyNotFound, "no lifecycle policy applies to %s; give a lifecyclePolicyText to preview one", scope)
	case p.err != nil:
		return nil, invalidf("repositoryName", "the stored policy of %s is invalid: %v", p.scope, p.err)
	}

	s.previewMu.Lock()
	defer s.previewMu.Unlock()
	if old, ok := s.previews[scope]; ok && old.snapshot().Status == PreviewInProgress {
		return nil, conflict(CodePreviewInProgress, "a preview of %s is already running", scope)
	}
	if s.base.Err() != nil {
		return nil, &Error{Status: 503, Code: CodeServer, Message: "the node is shutting down"}
	}
	if n := s.previewsRunning(); n >= s.o.MaxPreviews {
		return nil, &Error{Status: http.StatusTooManyRequests, Code: CodeLimitExceeded,
			Message: fmt.Sprintf("%d lifecycle policy previews are in progress; wait for one to finish", n)}
	}
	s.evictPreviews()
	pv := &preview{resp: LifecyclePolicyPreview{RepositoryName: scope, LifecyclePolicyText: p.rec.Text,
		Status: PreviewInProgress, Progress: &PreviewProgress{}}}
	s.previews[scope] = pv
	now := s.o.Now()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runPreview(s.base, pv, scope, ps, p, now)
	}()
	return pv.snapshot(), nil
}

// previewsRunning counts the previews in progress. previewMu is held.
func (s *Service) previewsRunning() int {
	n := 0
	for _, pv := range s.previews {
		pv.mu.Lock()
		if pv.finished.IsZero() {
			n++
		}
		pv.mu.Unlock()
	}
	return n
}

// evictPreviews drops the oldest finished previews beyond MaxPreviews.
// previewMu is held.
func (s *Service) evictPreviews() {
	for len(s.previews) >= s.o.MaxPreviews {
		oldest, at := "", time.Time{}
		for k, pv := range s.previews {
			pv.mu.Lock()
			f := pv.finished
			pv.mu.Unlock()
			if !f.IsZero() && (oldest == "" || f.Before(at)) {
				oldest, at = k, f
			}
		}
		if oldest == "" {
			return // all running
		}
		delete(s.previews, oldest)
	}
}

func (s *Service) runPreview(ctx context.Context, pv *preview, scope string, ps policySet, p *scoped, now time.Time) {
	fail := func(err error) {
		pv.mu.Lock()
		pv.resp.Status, pv.resp.FailureReason, pv.finished = PreviewFailed, err.Error(), time.Now()
		pv.mu.Unlock()
		s.log.Warn("lifecycle policy preview failed", zap.String("scope", scope), zap.Error(err))
	}
	// One preview computes at a time (a pattern's reads every repository);
	// the others wait their turn, in progress.
	select {
	case s.previewRun <- struct{}{}:
		defer func() { <-s.previewRun }()
	case <-ctx.Done():
		fail(ctx.Err())
		return
	}
	targets, err := s.lifecycleTargets(ctx, scope)
	if err != nil {
		fail(err)
		return
	}
	if isPattern(scope) { // the repositories the pattern's policy governs
		targets = slices.DeleteFunc(targets, func(ir reclaim.ImageRepo) bool { return ps.effective(ir.Name) != p })
	}
	pv.mu.Lock()
	pv.resp.Progress.RepositoriesTotal = len(targets)
	pv.mu.Unlock()
	var all []lifecycle.Result
	for _, ir := range targets {
		images, err := s.o.Reclaim.Images(ctx, ir)
		if err != nil {
			fail(err)
			return
		}
		res := reclaim.Plan(p.policy, images, now)
		all = append(all, res...)
		pv.mu.Lock()
		for _, r := range res {
			pv.resp.PreviewResults = append(pv.resp.PreviewResults, previewResult(ir, r))
		}
		pv.resp.Progress.RepositoriesDone++
		pv.resp.Progress.ImagesEvaluated += len(images)
		pv.mu.Unlock()
	}
	sum := lifecycle.Summarize(p.policy, all)
	out := &PreviewSummary{ExpiringImageTotalCount: sum.Images, ExpiringImageTotalBytes: sum.Bytes}
	for _, r := range sum.Rules {
		out.Rules = append(out.Rules, RuleSummary{RulePriority: r.RulePriority, Description: r.Description,
			ExpiringImageCount: r.Images, ExpiringImageTotalBytes: r.Bytes})
	}
	pv.mu.Lock()
	pv.resp.Summary, pv.resp.Status, pv.finished = out, PreviewComplete, time.Now()
	pv.mu.Unlock()
}

func (s *Service) getLifecyclePolicyPreview(ctx context.Context, req *RepositoryNameRequest) (*LifecyclePolicyPreview, error) {
	scope, err := s.scope(ctx, req.RepositoryName, false)
	if err != nil {
		return nil, err
	}
	s.previewMu.Lock()
	pv, ok := s.previews[scope]
	s.previewMu.Unlock()
	if !ok {
		return nil, notFound(CodePreviewNotFound, "no lifecycle policy preview of %s; start one with start-lifecycle-policy-preview", scope)
	}
	return pv.snapshot(), nil
}
