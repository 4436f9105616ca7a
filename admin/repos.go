package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"berth/errdefs"
	"berth/local"
	"berth/reclaim"
	"berth/registry"
	"berth/store"
	"berth/upstream"
)

// requireName checks a repository name field.
func requireName(field, name string) *Error {
	switch {
	case name == "":
		return invalidf(field, "required")
	case !registry.ValidName(name):
		return invalidf(field, "%q is not a repository name (lower-case components separated by /)", name)
	}
	return nil
}

// target resolves a repository's canonical name (see docs/design.md):
// local, or cached through an upstream rule.
func (s *Service) target(field, name string) (reclaim.ImageRepo, error) {
	if err := requireName(field, name); err != nil {
		return reclaim.ImageRepo{}, err
	}
	router := s.live().Router
	if router == nil {
		return reclaim.LocalRepo(name), nil
	}
	t, err := router.RouteCanonical(name)
	switch {
	case errors.Is(err, upstream.ErrNoRoute):
		return reclaim.LocalRepo(name), nil
	case err != nil:
		return reclaim.ImageRepo{}, invalidf(field, "%q: %v", name, err)
	}
	up := t.Upstream.Rule.Name
	return reclaim.ImageRepo{Name: t.Canonical(), Key: store.CachedKey(up, t.Repo)}, nil
}

// cachedName is the canonical name of a cached repository; an upstream
// no longer configured is named by its rule name.
func (s *Service) cachedName(up, repo string) string {
	rule := upstream.Rule{Name: up}
	if router := s.live().Router; router != nil {
		if u := router.Upstream(up); u != nil {
			rule = u.Rule
		}
	}
	return upstream.CanonicalName(rule, repo)
}

func (s *Service) rules() []upstream.Rule {
	router := s.live().Router
	if router == nil {
		return nil
	}
	var out []upstream.Rule
	for _, u := range router.Upstreams() {
		out = append(out, u.Rule)
	}
	return out
}

// localRepository resolves a name that must be an existing local
// repository.
func (s *Service) localRepository(ctx context.Context, field, name string) (*store.Repository, error) {
	ir, err := s.target(field, name)
	if err != nil {
		return nil, err
	}
	if ir.Cached() {
		return nil, notFound(CodeRepositoryNotFound, "%s is a pull-through cache of upstream %s, not a local repository", name, ir.Key.Upstream)
	}
	rec, err := s.o.Repos.Repository(ctx, name)
	if err != nil {
		return nil, err
	}
	return rec, nil
}

func toRepository(rec *store.Repository) Repository {
	out := Repository{RepositoryName: rec.Name, CreatedAt: rec.CreatedAt, ImageTagMutability: rec.Mutability}
	for _, f := range rec.Exclusions {
		out.ImageTagMutabilityExclusionFilters = append(out.ImageTagMutabilityExclusionFilters, ExclusionFilter{FilterType: FilterWildcard, Filter: f})
	}
	return out
}

// exclusions checks the exclusion filters of a request.
func exclusions(filters []ExclusionFilter) ([]string, error) {
	var out []string
	for i, f := range filters {
		if f.FilterType != "" && f.FilterType != FilterWildcard {
			return nil, invalidf(fmt.Sprintf("imageTagMutabilityExclusionFilters[%d].filterType", i), "must be %s, got %q", FilterWildcard, f.FilterType)
		}
		if f.Filter == "" {
			return nil, invalidf(fmt.Sprintf("imageTagMutabilityExclusionFilters[%d].filter", i), "required")
		}
		out = append(out, f.Filter)
	}
	return out, nil
}

func mutabilityError(err error) error {
	var de *errdefs.Error
	if errors.As(err, &de) && de.Kind == errdefs.ErrInvalidParameter {
		field := "imageTagMutability"
		if strings.Contains(de.Msg, "filter") {
			field = "imageTagMutabilityExclusionFilters"
		}
		return invalidf(field, "%s", de.Msg)
	}
	return err
}

func (s *Service) createRepository(ctx context.Context, req *CreateRepositoryRequest) (*RepositoryResponse, error) {
	ir, err := s.target("repositoryName", req.RepositoryName)
	if err != nil {
		return nil, err
	}
	if ir.Cached() {
		return nil, invalidf("repositoryName", "%s is routed to upstream %s as a pull-through cache; local repositories are names no upstream rule takes (see local.prefixes)", req.RepositoryName, ir.Key.Upstream)
	}
	if _, err := s.o.Repos.Repository(ctx, req.RepositoryName); err == nil {
		return nil, conflict(CodeRepositoryAlreadyExists, "repository %s already exists", req.RepositoryName)
	}
	m := req.ImageTagMutability
	if m == "" {
		m = local.Mutable
	}
	ex, err := exclusions(req.ImageTagMutabilityExclusionFilters)
	if err != nil {
		return nil, err
	}
	rec, err := s.o.Repos.CreateRepository(ctx, req.RepositoryName, m, ex)
	if err != nil {
		return nil, mutabilityError(err)
	}
	s.storeChanged()
	return &RepositoryResponse{Repository: toRepository(rec)}, nil
}

func (s *Service) describeRepositories(ctx context.Context, req *DescribeRepositoriesRequest) (*DescribeRepositoriesResponse, error) {
	n, paged, err := pageSize(req.MaxResults, req.NextToken)
	switch {
	case err != nil:
		return nil, err
	case paged && len(req.RepositoryNames) > 0:
		return nil, invalidf("maxResults", "maxResults and nextToken cannot be used with repositoryNames; list by names, or page through every repository")
	case paged:
		return s.repositoriesPage(ctx, req, n)
	case len(req.RepositoryNames) == 0:
		// Every repository: the first page, of defaultPage as ECR's
		// (up to 100 results and a nextToken when there are more).
		return s.repositoriesPage(ctx, req, defaultPage)
	}
	out := &DescribeRepositoriesResponse{Repositories: []Repository{}}
	for i, name := range req.RepositoryNames {
		rec, err := s.localRepository(ctx, fmt.Sprintf("repositoryNames[%d]", i), name)
		if err != nil {
			return nil, err
		}
		out.Repositories = append(out.Repositories, toRepository(rec))
	}
	return out, nil
}

func isNameUnknown(err error) bool {
	return errors.Is(err, errdefs.ErrRepositoryUnknown)
}

func (s *Service) deleteRepository(ctx context.Context, req *DeleteRepositoryRequest) (*RepositoryResponse, error) {
	if _, err := s.localRepository(ctx, "repositoryName", req.RepositoryName); err != nil {
		return nil, err
	}
	rec, err := s.o.Reclaim.DeleteRepository(ctx, req.RepositoryName, req.Force)
	if err != nil {
		return nil, err
	}
	s.storeChanged()
	// The repository's own lifecycle policy goes with it, as in ECR.
	if err := s.o.Store.DeletePolicy(ctx, store.PolicyLifecycle, req.RepositoryName); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return &RepositoryResponse{Repository: toRepository(rec)}, nil
}

func (s *Service) putImageTagMutability(ctx context.Context, req *PutImageTagMutabilityRequest) (*PutImageTagMutabilityRequest, error) {
	if _, err := s.localRepository(ctx, "repositoryName", req.RepositoryName); err != nil {
		return nil, err
	}
	if req.ImageTagMutability == "" {
		return nil, invalidf("imageTagMutability", "required")
	}
	ex, err := exclusions(req.ImageTagMutabilityExclusionFilters)
	if err != nil {
		return nil, err
	}
	if err := s.o.Repos.SetMutability(ctx, req.RepositoryName, req.ImageTagMutability, ex); err != nil {
		return nil, mutabilityError(err)
	}
	rec, err := s.o.Repos.Repository(ctx, req.RepositoryName)
	if err != nil {
		return nil, err
	}
	r := toRepository(rec)
	return &PutImageTagMutabilityRequest{RepositoryName: r.RepositoryName, ImageTagMutability: r.ImageTagMutability,
		ImageTagMutabilityExclusionFilters: r.ImageTagMutabilityExclusionFilters}, nil
}
