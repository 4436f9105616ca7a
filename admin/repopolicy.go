package admin

import (
	"context"
	"errors"

	"berth/auth"
	"berth/store"

	"go.uber.org/zap"
)

// SetRepositoryPolicyRequest is set-repository-policy: an ECR-shaped
// policy for a repository or a pattern (private/*).
type SetRepositoryPolicyRequest struct {
	RepositoryName string `json:"repositoryName"`
	PolicyText     string `json:"policyText"`
}

// RepositoryPolicy answers the repository policy verbs.
type RepositoryPolicy struct {
	RepositoryName string `json:"repositoryName"`
	PolicyText     string `json:"policyText"`
}

// setRepositoryPolicy validates, stores and applies a repository policy.
// The policy applies to the repository, or to every repository a pattern
// matches, as the names clients use (docker-hub/library/alpine).
func (s *Service) setRepositoryPolicy(ctx context.Context, req *SetRepositoryPolicyRequest) (*RepositoryPolicy, error) {
	if req.RepositoryName == "" {
		return nil, invalidf("repositoryName", "required")
	}
	if _, err := auth.ParsePolicy([]byte(req.PolicyText)); err != nil {
		var pe *auth.PolicyError
		if errors.As(err, &pe) {
			return nil, invalidf("policyText", "%s", pe.Error())
		}
		return nil, invalidf("policyText", "%v", err)
	}
	if err := s.o.Store.PutPolicy(ctx, store.PolicyRepository, req.RepositoryName, []byte(req.PolicyText)); err != nil {
		return nil, err
	}
	if s.o.OnRepositoryPolicy != nil {
		if err := s.o.OnRepositoryPolicy(req.RepositoryName, []byte(req.PolicyText)); err != nil {
			return nil, err
		}
	}
	s.log.Info("repository policy set", zap.String("repository", req.RepositoryName))
	return &RepositoryPolicy{RepositoryName: req.RepositoryName, PolicyText: req.PolicyText}, nil
}

func (s *Service) getRepositoryPolicy(ctx context.Context, req *RepositoryNameRequest) (*RepositoryPolicy, error) {
	v, err := s.o.Store.GetPolicy(ctx, store.PolicyRepository, req.RepositoryName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(CodeRepositoryPolicyNotFound, "no repository policy is set on %s", req.RepositoryName)
	}
	if err != nil {
		return nil, err
	}
	return &RepositoryPolicy{RepositoryName: req.RepositoryName, PolicyText: string(v)}, nil
}

func (s *Service) deleteRepositoryPolicy(ctx context.Context, req *RepositoryNameRequest) (*RepositoryPolicy, error) {
	p, err := s.getRepositoryPolicy(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := s.o.Store.DeletePolicy(ctx, store.PolicyRepository, req.RepositoryName); err != nil {
		return nil, err
	}
	if s.o.OnRepositoryPolicy != nil {
		if err := s.o.OnRepositoryPolicy(req.RepositoryName, nil); err != nil {
			return nil, err
		}
	}
	s.log.Info("repository policy deleted", zap.String("repository", req.RepositoryName))
	return p, nil
}
