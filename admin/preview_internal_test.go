package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"berth/reclaim"
	"berth/store"
)

// listingStore counts the listings of every local repository, which a
// pattern's preview starts with, and those running at once; each waits
// until release is closed, and finds none.
type listingStore struct {
	statsStore
	release                 chan struct{}
	listings, running, most atomic.Int64
}

func (l *listingStore) ListPolicies(context.Context, string) ([]store.PolicyEntry, error) {
	return nil, nil
}

func (l *listingStore) ListRepositories(ctx context.Context) ([]string, error) {
	l.listings.Add(1)
	n := l.running.Add(1)
	defer l.running.Add(-1)
	if n > l.most.Load() {
		l.most.Store(n)
	}
	select {
	case <-l.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// emptyReclaim knows of no image.
type emptyReclaim struct{ Reclaim }

func (emptyReclaim) StoreRepositories(context.Context) ([]reclaim.RepoImages, error) { return nil, nil }

// Lifecycle policy previews compute one at a time, however many are
// started, and no more than MaxPreviews may be in progress: the next is
// refused with LimitExceededException.
func TestPreviewsComputeOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &listingStore{release: make(chan struct{})}
		s := New(Options{Store: st, Reclaim: emptyReclaim{}, MaxPreviews: 3})
		defer s.Close()
		start := func(i int) error {
			_, err := s.startLifecyclePolicyPreview(t.Context(), &StartLifecyclePolicyPreviewRequest{
				RepositoryName: fmt.Sprintf("team%d/*", i), LifecyclePolicyText: untagged})
			return err
		}
		for i := range 3 {
			if err := start(i); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if n := st.listings.Load(); n != 1 {
			t.Fatalf("three previews started: %d computing, want 1", n)
		}
		var e *Error
		if err := start(3); !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.Code != CodeLimitExceeded {
			t.Fatalf("a fourth preview while three are in progress: %v", err)
		}
		close(st.release)
		synctest.Wait()
		if n, most := st.listings.Load(), st.most.Load(); n != 3 || most != 1 {
			t.Fatalf("%d previews computed, %d at once; want 3, one at a time", n, most)
		}
		for i := range 3 {
			got, err := s.getLifecyclePolicyPreview(t.Context(), &RepositoryNameRequest{RepositoryName: fmt.Sprintf("team%d/*", i)})
			if err != nil || got.Status != PreviewComplete {
				t.Fatalf("preview %d: %+v, %v", i, got, err)
			}
		}
		if err := start(3); err != nil {
			t.Fatalf("a preview once the others finished: %v", err)
		}
	})
}

const untagged = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}`
