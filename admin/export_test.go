package admin

import (
	"context"
	"sync/atomic"
)

// CountWalks makes every walk of the store that counts describe-cache's
// repositories and images count in the result.
func CountWalks(s *Service) *atomic.Int64 {
	var n atomic.Int64
	walk := s.counts.walk
	s.counts.walk = func(ctx context.Context) (*storeCounts, error) {
		n.Add(1)
		return walk(ctx)
	}
	return &n
}

// CountRepositoryWalks makes every walk of every repository that a
// lifecycle run or preview does count in the result.
func CountRepositoryWalks(s *Service) *atomic.Int64 {
	s.repoWalks = new(atomic.Int64)
	return s.repoWalks
}
