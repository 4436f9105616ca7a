package admin_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"berth/admin"
	"berth/admin/admintest"
	"berth/upstream"
)

// describe-pull-through-cache-rules shows a rule's endpoints and how each
// fared.
func TestDescribeRuleEndpoints(t *testing.T) {
	n := admintest.New(t)
	if _, err := n.Router.Upstream("quay").HeadManifest(context.Background(), "team/app", "v1"); !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("HeadManifest with every endpoint down = %v", err)
	}
	var dr admin.DescribePullThroughCacheRulesResponse
	n.OK("describe-pull-through-cache-rules", admin.DescribePullThroughCacheRulesRequest{EcrRepositoryPrefixes: []string{"quay"}}, &dr)
	r := dr.PullThroughCacheRules[0]
	if want := []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}; r.UpstreamRegistryURL != want[0] || !reflect.DeepEqual(r.UpstreamRegistryURLs, want) {
		t.Fatalf("urls %q %q", r.UpstreamRegistryURL, r.UpstreamRegistryURLs)
	}
	if len(r.Endpoints) != 2 {
		t.Fatalf("endpoints %+v", r.Endpoints)
	}
	for _, e := range r.Endpoints {
		if e.Healthy || e.SetAsideUntil == nil || e.ConsecutiveFailures != 1 || e.LastError == "" || e.LastFailureAt == nil {
			t.Errorf("endpoint %+v; want set aside after one failure", e)
		}
	}
}
