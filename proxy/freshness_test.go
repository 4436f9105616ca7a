package proxy

import (
	"net/http"
	"testing"
	"time"

	"berth/config"
	"berth/upstream"
)

func fresh(f config.Freshness) *config.Freshness { return &f }

// policies is the example: moving tags are asked on every pull,
// version tags kept for 30 days, stable pinned; other tags take the
// rule's ttl (1h here).
func policies(r *upstream.Rule) {
	r.TTL = time.Hour
	r.TagPolicies = []config.TagPolicy{
		{Tags: []string{"latest", "prod", "release-*"}, TTL: fresh(0)},
		{Tags: []string{"v*"}, TTL: fresh(config.Freshness(720 * time.Hour))},
		{Tags: []string{"stable"}, TTL: fresh(config.Never)},
	}
}

// pull pulls tag of team/app and returns the digest served, after
// forgetting the upstream's counts.
func (e *env) pull(t *testing.T, tag string) string {
	t.Helper()
	e.up.Reset()
	return e.manifestDigest(t, "/v2/up/team/app/manifests/"+tag)
}

// wantAsked checks the manifest requests the upstream saw since the pull.
func (e *env) wantAsked(t *testing.T, what string, heads, gets int) {
	t.Helper()
	if h, g := e.up.Count("HEAD manifests"), e.up.Count("GET manifests"); h != heads || g != gets {
		t.Fatalf("%s: the upstream saw %d HEADs and %d GETs, want %d and %d", what, h, g, heads, gets)
	}
}

// TestTagPolicyZeroTTLAsksEveryPull: a tag under ttl 0s costs one HEAD
// per pull, and the pull right after the upstream moves it gets the new
// digest; the stored record names the policy.
func TestTagPolicyZeroTTLAsksEveryPull(t *testing.T) {
	e := newEnv(t, envOpts{rule: policies})
	a := e.pushImage(t, "team/app", "prod", randomImage(t))
	if got := e.pull(t, "prod"); got != a.String() {
		t.Fatalf("cold: %s, want %s", got, a)
	}
	e.wantAsked(t, "cold", 0, 1)
	for i := range 3 {
		if got := e.pull(t, "prod"); got != a.String() {
			t.Fatalf("pull %d: %s, want %s", i, got, a)
		}
		e.wantAsked(t, "unchanged, no time passed", 1, 0)
	}
	b := e.pushImage(t, "team/app", "prod", randomImage(t))
	if got := e.pull(t, "prod"); got != b.String() {
		t.Fatalf("after the upstream moved prod: %s, want %s", got, b)
	}
	e.wantAsked(t, "moved", 1, 1)
	rec, err := e.store.GetTag(t.Context(), "up", "team/app", "prod")
	if err != nil || rec.Policy != "tagPolicies[0]" || !rec.FetchedAt.Equal(e.clock.Now()) {
		t.Fatalf("tag record %+v (%v), want validated now under tagPolicies[0]", rec, err)
	}
}

// TestTagPolicyLongAndFallbackTTL: a version tag is kept for its policy's
// 720h, another tag for the rule's ttl.
func TestTagPolicyLongAndFallbackTTL(t *testing.T) {
	e := newEnv(t, envOpts{rule: policies})
	e.pushImage(t, "team/app", "v1.2", randomImage(t))
	e.pushImage(t, "team/app", "nightly", randomImage(t))
	e.pull(t, "v1.2")
	e.pull(t, "nightly")
	e.clock.Add(2 * time.Hour)
	e.pull(t, "v1.2")
	e.wantAsked(t, "v1.2 after 2h", 0, 0)
	e.pull(t, "nightly")
	e.wantAsked(t, "nightly after 2h (rule ttl 1h)", 1, 0)
	e.clock.Add(719 * time.Hour)
	e.pull(t, "v1.2")
	e.wantAsked(t, "v1.2 after 721h", 1, 0)
	rec, err := e.store.GetTag(t.Context(), "up", "team/app", "nightly")
	if err != nil || rec.Policy != "ttl" {
		t.Fatalf("nightly's record %+v (%v), want policy ttl", rec, err)
	}
}

// TestTagPolicyNeverPins: a pinned tag is served without asking the
// upstream however old it is, until the operator deletes the cached tag.
func TestTagPolicyNeverPins(t *testing.T) {
	e := newEnv(t, envOpts{rule: policies})
	a := e.pushImage(t, "team/app", "stable", randomImage(t))
	e.pull(t, "stable")
	b := e.pushImage(t, "team/app", "stable", randomImage(t))
	e.clock.Add(10_000 * time.Hour)
	if got := e.pull(t, "stable"); got != a.String() {
		t.Fatalf("pinned: %s, want %s", got, a)
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("pinned: %d upstream requests, want none", n)
	}
	// The operator's refresh: batch-delete-image of the tag deletes it.
	if err := e.store.DeleteTag(t.Context(), "up", "team/app", "stable"); err != nil {
		t.Fatal(err)
	}
	if got := e.pull(t, "stable"); got != b.String() {
		t.Fatalf("after the refresh: %s, want %s", got, b)
	}
}

// deleteUpstreamTag makes the upstream answer 404 for tag, as after its
// deletion there.
func (e *env) deleteUpstreamTag(t *testing.T, tag string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, e.up.URL+"/v2/team/app/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE %s upstream: %d", tag, resp.StatusCode)
	}
}

// TestOnUpstreamDelete: under forget (the default) a tag the upstream
// deleted answers 404; under keep the cached digest is served.
func TestOnUpstreamDelete(t *testing.T) {
	for _, keep := range []bool{false, true} {
		e := newEnv(t, envOpts{rule: func(r *upstream.Rule) {
			policies(r)
			if keep {
				r.OnUpstreamDelete = config.OnDeleteKeep
			}
		}})
		a := e.pushImage(t, "team/app", "latest", randomImage(t))
		e.pull(t, "latest")
		e.deleteUpstreamTag(t, "latest")
		resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/app/manifests/latest", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !keep {
			wantError(t, resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
			continue
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != a.String() {
			t.Fatalf("keep: %d %s, want the cached %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), a)
		}
	}
}

// TestTagPolicyZeroTTLServesStale: under ttl 0s an upstream that fails
// still gets the cached digest served (stale-if-error).
func TestTagPolicyZeroTTLServesStale(t *testing.T) {
	e := newEnv(t, envOpts{rule: policies, timeout: 500 * time.Millisecond})
	a := e.pushImage(t, "team/app", "latest", randomImage(t))
	e.pull(t, "latest")
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	if got := e.pull(t, "latest"); got != a.String() {
		t.Fatalf("upstream failing: %s, want the cached %s", got, a)
	}
	e.wantAsked(t, "upstream failing", 1, 0)
}

// TestTagPoliciesReload: a rule's policies changed by a reload apply to
// the next pull.
func TestTagPoliciesReload(t *testing.T) {
	var rule upstream.Rule
	e := newEnv(t, envOpts{rule: func(r *upstream.Rule) { r.TTL = time.Hour; rule = *r }})
	e.pushImage(t, "team/app", "latest", randomImage(t))
	e.pull(t, "latest")
	e.pull(t, "latest")
	e.wantAsked(t, "ttl 1h", 0, 0)
	policies(&rule)
	e.setRule(t, rule)
	e.pull(t, "latest")
	e.wantAsked(t, "after the reload to ttl 0s", 1, 0)
}
