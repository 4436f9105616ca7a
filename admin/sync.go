package admin

import (
	"context"

	"berth/errdefs"
	"berth/registry"
	"berth/syncer"
)

// Syncer runs the node's sync rules (package syncer).
type Syncer interface {
	SyncNow(ctx context.Context, rule string, wait bool) ([]syncer.Status, error)
	Describe() []syncer.Status
	// Fill pulls one image through the node (warm).
	Fill(ctx context.Context, repo registry.Repo, ref string, platforms []string) (syncer.Filled, error)
}

// SyncNowRequest is sync-now's request (Berth's own verb): one rule, or
// every rule without one; with wait the answer comes when the runs end.
type SyncNowRequest struct {
	Rule string `json:"rule,omitempty"`
	Wait bool   `json:"wait,omitempty"`
}

// DescribeSyncRequest is describe-sync's request (Berth's own verb).
type DescribeSyncRequest struct{}

// SyncResponse answers sync-now and describe-sync: each rule's last run
// (when, images, bytes, errors), whether one runs now, and the next.
type SyncResponse struct {
	Rules []syncer.Status `json:"rules"`
}

func (s *Service) syncer() (Syncer, error) {
	if s.o.Sync == nil {
		return nil, errdefs.New(errdefs.ErrUnsupported, "this node runs no sync rules")
	}
	return s.o.Sync, nil
}

func (s *Service) syncNow(ctx context.Context, req *SyncNowRequest) (*SyncResponse, error) {
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	st, err := sy.SyncNow(ctx, req.Rule, req.Wait)
	if err != nil {
		return nil, err
	}
	return &SyncResponse{Rules: nonNil(st)}, nil
}

func (s *Service) describeSync(_ context.Context, _ *DescribeSyncRequest) (*SyncResponse, error) {
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	return &SyncResponse{Rules: nonNil(sy.Describe())}, nil
}

func nonNil(st []syncer.Status) []syncer.Status {
	if st == nil {
		return []syncer.Status{}
	}
	return st
}
