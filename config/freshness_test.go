package config

import (
	"strings"
	"testing"
	"time"
)

// TestTagPoliciesParse: tag policies decode in order with their TTLs,
// "never" included, and a tag takes the first policy that matches it,
// else the rule's ttl.
func TestTagPoliciesParse(t *testing.T) {
	cfg, err := Parse([]byte(`
upstreams:
  - name: hub
    url: https://registry-1.docker.io
    default: true
    ttl: 12h
    onUpstreamDelete: keep
    tagPolicies:
      - {tags: [latest, prod, "release-*"], ttl: 0s}
      - {tags: ["v*"], ttl: 720h}
      - {tags: [stable], ttl: never}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Upstreams[0]
	if !r.KeepsDeletedTags() {
		t.Error("onUpstreamDelete: keep was not read")
	}
	for _, c := range []struct {
		tag, policy string
		want        Freshness
	}{
		{"latest", "tagPolicies[0]", 0},
		{"release-2024", "tagPolicies[0]", 0},
		{"v1.2", "tagPolicies[1]", Freshness(720 * time.Hour)},
		{"stable", "tagPolicies[2]", Never},
		{"nightly", "ttl", Freshness(12 * time.Hour)},
	} {
		f, policy := r.TagFreshness(c.tag)
		if f != c.want || policy != c.policy {
			t.Errorf("%s: %s by %s, want %s by %s", c.tag, f, policy, c.want, c.policy)
		}
	}
	if Never.Fresh(1000*time.Hour) != true || Freshness(0).Fresh(0) != false || Freshness(time.Hour).Fresh(time.Minute) != true {
		t.Error("Fresh decides wrongly")
	}
}

// TestTagPoliciesInvalid: each mistake names its key.
func TestTagPoliciesInvalid(t *testing.T) {
	_, err := Parse([]byte(`
upstreams:
  - name: hub
    url: https://registry-1.docker.io
    default: true
    onUpstreamDelete: remember
    tagPolicies:
      - {tags: [], ttl: 1h}
      - {tags: ["bad/tag"]}
      - {tags: [x], ttl: soon}
      - {tags: [y], ttl: -1h}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`upstreams[0].onUpstreamDelete: must be forget or keep, not "remember"`,
		`upstreams[0].tagPolicies[0].tags: required`,
		`upstreams[0].tagPolicies[1].tags[0]: "bad/tag" is not a tag`,
		`upstreams[0].tagPolicies[1].ttl: required`,
		`upstreams[0].tagPolicies[2].ttl: expected a duration such as "0s" or "720h", or never, got "soon"`,
		`upstreams[0].tagPolicies[3].ttl: expected a duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
