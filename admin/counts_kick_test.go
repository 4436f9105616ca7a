package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"berth/admin"
	"berth/admin/admintest"
	"berth/reclaim"
)

// keepOnePolicy expires all but the newest image.
const keepOnePolicy = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`

// An admin call that creates or deletes a repository or an image has
// describe-cache count the store again at once: the counts it serves right
// after the call are the call's outcome, counted as it returned, not a
// minute later, nor at the next look at the store's totals.
func TestAdminCallsRecountAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := admintest.NewInProcess(t)
		t0 := admintest.Epoch
		for i, tag := range []string{"v1", "v2", "v3"} {
			n.Push("private/app", t0.Add(time.Duration(i)*time.Hour), admintest.NewImage("app"+tag, 1), tag)
		}
		n.Push("private/old", t0, admintest.NewImage("old", 1), "v1")
		for i, tag := range []string{"3.20", "3.21", "3.22"} {
			n.Cache("docker-hub", "library/alpine", t0.Add(time.Duration(i)*time.Hour), admintest.NewImage("alpine"+tag, 1), tag)
		}
		n.Cache("quay", "org/x", t0, admintest.NewImage("x", 1), "1")
		for _, repo := range []string{"private/app", "docker-hub/library/alpine"} {
			n.OK("put-lifecycle-policy", admin.PutLifecyclePolicyRequest{RepositoryName: repo, LifecyclePolicyText: keepOnePolicy}, nil)
		}
		quay := admin.RepositoryStats{Repositories: 1, Images: 1}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); n.Service.Run(ctx) }()
		defer func() { cancel(); <-done }()

		check := func(what string, local, hub admin.RepositoryStats) {
			t.Helper()
			var dc admin.DescribeCacheResponse
			n.OK("describe-cache", struct{}{}, &dc)
			want := []admin.UpstreamStats{
				{Name: "docker-hub", Prefix: "docker-hub", RepositoryStats: hub},
				{Name: "quay", Prefix: "quay", RepositoryStats: quay},
			}
			now := n.Clock.Now()
			if dc.CountsAsOf == nil || !dc.CountsAsOf.Equal(now) || dc.Local != local || len(dc.Upstreams) != 2 ||
				dc.Upstreams[0] != want[0] || dc.Upstreams[1] != want[1] {
				t.Fatalf("%s: describe-cache counts local %+v, upstreams %+v as of %v; want local %+v, upstreams %+v, counted at %v",
					what, dc.Local, dc.Upstreams, dc.CountsAsOf, local, want, now)
			}
		}
		synctest.Wait()
		check("at start", admin.RepositoryStats{Repositories: 2, Images: 4}, admin.RepositoryStats{Repositories: 1, Images: 3})

		for _, c := range []struct {
			verb       string
			req        any
			local, hub admin.RepositoryStats
		}{
			{"create-repository", admin.CreateRepositoryRequest{RepositoryName: "private/new"},
				admin.RepositoryStats{Repositories: 3, Images: 4}, admin.RepositoryStats{Repositories: 1, Images: 3}},
			{"delete-repository", admin.DeleteRepositoryRequest{RepositoryName: "private/old", Force: true},
				admin.RepositoryStats{Repositories: 2, Images: 3}, admin.RepositoryStats{Repositories: 1, Images: 3}},
			{"batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageTag: "v1"}}},
				admin.RepositoryStats{Repositories: 2, Images: 2}, admin.RepositoryStats{Repositories: 1, Images: 3}},
			{"batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "docker-hub/library/alpine", ImageIDs: []admin.ImageID{{ImageTag: "3.20"}}},
				admin.RepositoryStats{Repositories: 2, Images: 2}, admin.RepositoryStats{Repositories: 1, Images: 2}},
			// Last: the collection that follows the run moves the store's
			// totals after the count began, which makes another count due.
			{"run-lifecycle", admin.RunLifecycleRequest{},
				admin.RepositoryStats{Repositories: 2, Images: 1}, admin.RepositoryStats{Repositories: 1, Images: 1}},
		} {
			// The last count is 3 s old: past the 2 s gap a count keeps
			// from the one before, and a second after the loop last
			// looked at the store's totals (every 2 s), a second before
			// it looks again. Only the call can start a count now.
			time.Sleep(3 * time.Second)
			n.OK(c.verb, c.req, nil)
			synctest.Wait()
			check(c.verb, c.local, c.hub)
		}
	})
}

// failAfterOne expires the first image it is asked to, then fails.
type failAfterOne struct{ admin.Reclaim }

func (r failAfterOne) ExpireImages(ctx context.Context, refs []reclaim.ImageRef) (reclaim.ExpireReport, error) {
	rep, err := r.Reclaim.ExpireImages(ctx, refs[:1])
	if err != nil {
		return rep, err
	}
	return rep, errors.New("disk on fire")
}

// A batch-delete-image that fails after deleting some of its images has
// them counted again at once too.
func TestFailedDeleteRecountsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := admintest.NewInProcess(t)
		n.Push("private/app", admintest.Epoch, admintest.NewImage("a", 1), "a")
		n.Push("private/app", admintest.Epoch, admintest.NewImage("b", 1), "b")
		s := admin.New(admin.Options{Store: n.Store, Repos: n.Repos, Reclaim: failAfterOne{n.Reclaim}, Now: n.Clock.Now})
		defer s.Close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		time.Sleep(3 * time.Second) // as in TestAdminCallsRecountAtOnce
		req := admin.BatchDeleteImageRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageTag: "a"}, {ImageTag: "b"}}}
		if status, body := serve(s, "batch-delete-image", req); status != http.StatusInternalServerError {
			t.Fatalf("batch-delete-image: status %d, want the failure: %s", status, body)
		}
		synctest.Wait()
		status, body := serve(s, "describe-cache", struct{}{})
		var dc admin.DescribeCacheResponse
		if err := json.Unmarshal(body, &dc); status != http.StatusOK || err != nil {
			t.Fatalf("describe-cache: %d %s", status, body)
		}
		if now := n.Clock.Now(); dc.Local != (admin.RepositoryStats{Repositories: 1, Images: 1}) || dc.CountsAsOf == nil || !dc.CountsAsOf.Equal(now) {
			t.Fatalf("after a delete that failed after one image: local %+v as of %v, want 1 image counted at %v", dc.Local, dc.CountsAsOf, now)
		}
	})
}

// serve calls verb on s in-process.
func serve(s *admin.Service, verb string, req any) (int, []byte) {
	b, _ := json.Marshal(req)
	r := httptest.NewRequest(http.MethodPost, admin.Prefix+verb, bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}
