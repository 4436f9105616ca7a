package auth

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

func mustPolicy(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// isCached tells the proxied namespaces of the test registry.
func isCached(repo string) bool {
	return strings.HasPrefix(repo, "docker-hub/") || strings.HasPrefix(repo, "internal/")
}

// testPolicies is the registry the authorization table runs against.
func testPolicies(t *testing.T) EvaluatorConfig {
	return EvaluatorConfig{
		Namespaces: map[string]*Policy{
			"private/*": mustPolicy(t, `{"Version":"2012-10-17","Statement":[
				{"Sid":"DevWorks","Effect":"Allow","Principal":{"AWS":"group:dev"},"Action":["ecr:BatchGetImage","ecr:PutImage"]},
				{"Sid":"DenyCarol","Effect":"Deny","Principal":{"Users":["carol"]},"Action":"*"}]}`),
			// Proxied namespace reachable from the internal network only.
			"internal/*": mustPolicy(t, `{"Statement":[
				{"Sid":"InsideOnly","Effect":"Deny","Principal":"*","Action":"pull",
				 "Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}}]}`),
			// Local namespace a partner network may pull anonymously.
			"partner/*": mustPolicy(t, `{"Statement":[
				{"Sid":"PartnerNet","Effect":"Allow","Principal":"*","Action":"pull",
				 "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}`),
			"*": mustPolicy(t, `{"Statement":[{"Sid":"Banned","Effect":"Deny","Principal":{"AWS":"user:mallory"},"Action":"ecr:*"}]}`),
		},
		Repositories: map[string]*Policy{
			"private/app": mustPolicy(t, `{"Statement":[
				{"Sid":"BobReads","Effect":"Allow","Principal":{"AWS":["user:bob"]},"Action":"pull"},
				{"Sid":"AnyUserLists","Effect":"Allow","Principal":{"Users":["*"]},"Action":"ecr:ListImages"}]}`),
			"private/secret": mustPolicy(t, `{"Statement":[
				{"Sid":"Frozen","Effect":"Deny","Principal":{"Groups":["dev"]},"Action":"push"}]}`),
			"private/ops": mustPolicy(t, `{"Statement":[
				{"Sid":"OpsCleans","Effect":"Allow","Principal":{"AWS":"group:ops"},"Action":"ecr:BatchDeleteImage"}]}`),
			"public/tools":               mustPolicy(t, `{"Statement":[{"Sid":"World","Effect":"Allow","Principal":"*","Action":"pull"}]}`),
			"docker-hub/library/blocked": mustPolicy(t, `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"pull"}]}`),
		},
	}
}

// testEvaluators: "default" has Berth's defaults; "strict" grants
// authenticated users nothing on local repositories by default, so that
// only policies do.
func testEvaluators(t *testing.T) map[string]*Evaluator {
	out := map[string]*Evaluator{}
	for name, d := range map[string]*Defaults{
		"default": nil,
		"strict": {Anonymous: DefaultGrants{Cached: []string{ActionPull}},
			Authenticated: DefaultGrants{Cached: []string{ActionPull}}},
	} {
		cfg := testPolicies(t)
		cfg.Defaults = d
		e, err := NewEvaluator(cfg, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = e
	}
	return out
}

// testPeople are the principals of the tables.
func testPeople() (anon, alice, bob, carol, mallory Principal) {
	return Principal{Anonymous: true},
		Principal{Name: "alice", Groups: []string{"dev"}},
		Principal{Name: "bob", Groups: []string{"ops"}},
		Principal{Name: "carol"},
		Principal{Name: "mallory", Groups: []string{"dev"}}
}

func TestAuthorize(t *testing.T) {
	evals := testEvaluators(t)
	anon, alice, bob, carol, mallory := testPeople()
	inside, outside := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("8.8.8.8")
	partner := netip.MustParseAddr("203.0.113.7")
	tests := []struct {
		name   string
		eval   string
		who    Principal
		ip     netip.Addr
		repo   string
		action string
		want   bool
	}{
		// Defaults: anonymous vs authenticated, local vs cached.
		{name: "anonymous pulls cached by default", eval: "default", who: anon, repo: "docker-hub/library/nginx", action: "pull", want: true},
		{name: "anonymous may not push cached", eval: "default", who: anon, repo: "docker-hub/library/nginx", action: "push"},
		{name: "anonymous may not list cached", eval: "default", who: anon, repo: "docker-hub/library/nginx", action: "list"},
		{name: "anonymous may not pull local", eval: "default", who: anon, repo: "scratch/x", action: "pull"},
		{name: "unnamed principal is anonymous", eval: "default", who: Principal{}, repo: "scratch/x", action: "pull"},
		{name: "user pulls local by default", eval: "default", who: carol, repo: "scratch/x", action: "pull", want: true},
		{name: "user pushes local by default", eval: "default", who: carol, repo: "scratch/x", action: "push", want: true},
		{name: "user lists local by default", eval: "default", who: carol, repo: "scratch/x", action: "list", want: true},
		{name: "user may not delete local by default", eval: "default", who: carol, repo: "scratch/x", action: "delete"},
		{name: "user pulls cached by default", eval: "default", who: carol, repo: "docker-hub/library/nginx", action: "pull", want: true},
		{name: "user may not push cached", eval: "default", who: carol, repo: "docker-hub/library/nginx", action: "push"},
		{name: "strict: user may not pull local", eval: "strict", who: carol, repo: "scratch/x", action: "pull"},
		{name: "strict: user pulls cached", eval: "strict", who: carol, repo: "docker-hub/library/nginx", action: "pull", want: true},
		{name: "unknown action", eval: "default", who: carol, repo: "scratch/x", action: "frobnicate"},
		// Group principals, namespace patterns and per-repository policies.
		{name: "group allow from namespace", eval: "strict", who: alice, repo: "private/app", action: "push", want: true},
		{name: "group allow covers deep names", eval: "strict", who: alice, repo: "private/team/app", action: "pull", want: true},
		{name: "namespace pattern does not match its prefix", eval: "strict", who: alice, repo: "private", action: "pull"},
		{name: "group allow is only for listed actions", eval: "strict", who: alice, repo: "private/app", action: "delete"},
		{name: "user allow from repository policy", eval: "strict", who: bob, repo: "private/app", action: "pull", want: true},
		{name: "repository policy is for that repository", eval: "strict", who: bob, repo: "private/app2", action: "pull"},
		{name: "user allow is only for listed actions", eval: "strict", who: bob, repo: "private/app", action: "push"},
		{name: "any-user principal", eval: "strict", who: bob, repo: "private/app", action: "list", want: true},
		{name: "any-user principal excludes anonymous", eval: "strict", who: anon, repo: "private/app", action: "list"},
		{name: "anonymous named like a user is anonymous", eval: "strict", who: Principal{Name: "alice", Groups: []string{"dev"}, Anonymous: true}, repo: "private/app", action: "push"},
		{name: "group delete from repository policy", eval: "default", who: bob, repo: "private/ops", action: "delete", want: true},
		{name: "other group may not delete", eval: "default", who: alice, repo: "private/ops", action: "delete"},
		// Deny overrides Allow.
		{name: "repository deny overrides namespace allow", eval: "strict", who: alice, repo: "private/secret", action: "push"},
		{name: "repository deny overrides default", eval: "default", who: alice, repo: "private/secret", action: "push"},
		{name: "repository deny is for its actions", eval: "strict", who: alice, repo: "private/secret", action: "pull", want: true},
		{name: "namespace deny overrides repository allow", eval: "strict", who: carol, repo: "private/app", action: "list"},
		{name: "namespace deny overrides default", eval: "default", who: carol, repo: "private/x", action: "pull"},
		{name: "catch-all namespace deny", eval: "default", who: mallory, repo: "docker-hub/library/nginx", action: "pull"},
		{name: "catch-all deny beats group allow", eval: "strict", who: mallory, repo: "private/app", action: "push"},
		// Wildcard principal "*".
		{name: "wildcard allows anonymous", eval: "default", who: anon, repo: "public/tools", action: "pull", want: true},
		{name: "wildcard allows users", eval: "strict", who: carol, repo: "public/tools", action: "pull", want: true},
		{name: "wildcard allow is only for pull", eval: "default", who: anon, repo: "public/tools", action: "push"},
		{name: "wildcard deny hits anonymous", eval: "default", who: anon, repo: "docker-hub/library/blocked", action: "pull"},
		{name: "wildcard deny hits users", eval: "default", who: alice, repo: "docker-hub/library/blocked", action: "pull"},
		// CIDR conditions.
		{name: "NotIpAddress deny spares inside", eval: "default", who: anon, ip: inside, repo: "internal/base", action: "pull", want: true},
		{name: "NotIpAddress deny hits outside", eval: "default", who: anon, ip: outside, repo: "internal/base", action: "pull"},
		{name: "NotIpAddress deny hits users outside", eval: "default", who: alice, ip: outside, repo: "internal/base", action: "pull"},
		{name: "NotIpAddress deny holds for unknown address", eval: "default", who: alice, repo: "internal/base", action: "pull"},
		{name: "IPv4-mapped address is unmapped", eval: "default", who: anon, ip: netip.MustParseAddr("::ffff:10.1.2.3"), repo: "internal/base", action: "pull", want: true},
		{name: "IpAddress allow from partner net", eval: "default", who: anon, ip: partner, repo: "partner/sdk", action: "pull", want: true},
		{name: "IpAddress allow not from elsewhere", eval: "default", who: anon, ip: outside, repo: "partner/sdk", action: "pull"},
		{name: "IpAddress allow not for unknown address", eval: "default", who: anon, repo: "partner/sdk", action: "pull"},
		{name: "IpAddress allow is only for pull", eval: "default", who: anon, ip: partner, repo: "partner/sdk", action: "push"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := evals[tt.eval]
			d := e.Authorize(context.Background(), Request{Principal: tt.who, SourceIP: tt.ip, Repo: tt.repo,
				Action: tt.action, RepoIsLocal: !isCached(tt.repo)})
			if d.Allowed != tt.want {
				t.Errorf("Authorize(%s, %s %s) = %+v, want allowed=%v", tt.who.Name, tt.action, tt.repo, d, tt.want)
			}
			if d.Reason == "" {
				t.Error("decision without a reason")
			}
		})
	}
}

func TestGrant(t *testing.T) {
	evals := testEvaluators(t)
	anon, _, bob, carol, mallory := testPeople()
	ctx := context.Background()
	tests := []struct {
		name string
		eval string
		who  Principal
		want Access
		got  []string
	}{
		{name: "trimmed to pull on cached", eval: "default", who: carol, want: Access{TypeRepository, "docker-hub/library/nginx", []string{"pull", "push"}}, got: []string{"pull"}},
		{name: "pull and push on local", eval: "default", who: carol, want: Access{TypeRepository, "scratch/x", []string{"pull", "push"}}, got: []string{"pull", "push"}},
		{name: "star trimmed to allowed actions", eval: "default", who: carol, want: Access{TypeRepository, "scratch/x", []string{"*"}}, got: []string{"pull", "push"}},
		{name: "star granted whole", eval: "default", who: bob, want: Access{TypeRepository, "private/ops", []string{"*"}}, got: []string{"*"}},
		{name: "nothing for anonymous on local", eval: "default", who: anon, want: Access{TypeRepository, "scratch/x", []string{"pull"}}},
		{name: "unknown action ignored", eval: "default", who: carol, want: Access{TypeRepository, "scratch/x", []string{"pull", "tag"}}, got: []string{"pull"}},
		{name: "catalog for users", eval: "default", who: carol, want: Access{TypeRegistry, "catalog", []string{"*"}}, got: []string{"*"}},
		{name: "no catalog for anonymous", eval: "default", who: anon, want: Access{TypeRegistry, "catalog", []string{"*"}}},
		{name: "no catalog under catch-all deny", eval: "default", who: mallory, want: Access{TypeRegistry, "catalog", []string{"*"}}},
		{name: "unknown resource type", eval: "default", who: carol, want: Access{"repository(plugin)", "scratch/x", []string{"pull"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := evals[tt.eval].Grant(ctx, tt.who, netip.Addr{}, tt.want, !isCached(tt.want.Name))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.got) {
				t.Errorf("Grant = %v, want %v", got, tt.got)
			}
		})
	}
}

func TestSetRepositoryPolicy(t *testing.T) {
	e, err := NewEvaluator(EvaluatorConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	anon, _, _, _, _ := testPeople()
	req := Request{Principal: anon, Repo: "local/app", Action: "pull", RepoIsLocal: true}
	if e.Authorize(ctx, req).Allowed {
		t.Fatal("anonymous pull of a local repository allowed by default")
	}
	e.SetRepositoryPolicy("local/app", mustPolicy(t, `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"pull"}]}`))
	if d := e.Authorize(ctx, req); !d.Allowed {
		t.Fatalf("after SetRepositoryPolicy: %+v", d)
	}
	e.SetRepositoryPolicy("local/app", nil)
	if e.Authorize(ctx, req).Allowed {
		t.Fatal("policy still applies after deletion")
	}
}

func TestNewEvaluatorRefuses(t *testing.T) {
	p := &Policy{}
	tests := []struct {
		name string
		cfg  EvaluatorConfig
	}{
		{name: "unknown default action", cfg: EvaluatorConfig{Defaults: &Defaults{Anonymous: DefaultGrants{Cached: []string{"pul"}}}}},
		{name: "empty repository", cfg: EvaluatorConfig{Repositories: map[string]*Policy{"": p}}},
		{name: "wildcard repository", cfg: EvaluatorConfig{Repositories: map[string]*Policy{"a/*": p}}},
		{name: "nil policy", cfg: EvaluatorConfig{Namespaces: map[string]*Policy{"a/*": nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewEvaluator(tt.cfg, nil); err == nil {
				t.Fatal("NewEvaluator succeeded")
			}
		})
	}
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		name, pattern, s string
		want             bool
	}{
		{name: "namespace", pattern: "private/*", s: "private/app", want: true},
		{name: "nested", pattern: "docker-hub/*", s: "docker-hub/library/nginx", want: true},
		{name: "not the prefix itself", pattern: "private/*", s: "private"},
		{name: "other namespace", pattern: "private/*", s: "privateer/app"},
		{name: "star matches all", pattern: "*", s: "a/b", want: true},
		{name: "star matches empty", pattern: "*", s: "", want: true},
		{name: "inner star", pattern: "team-*/app", s: "team-a/b/app", want: true},
		{name: "inner star mismatch", pattern: "team-*/app", s: "team-a/app2"},
		{name: "exact", pattern: "a/b", s: "a/b", want: true},
		{name: "two stars", pattern: "*/cache/*", s: "x/cache/y", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchPattern(tt.pattern, tt.s); got != tt.want {
				t.Errorf("matchPattern(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

func TestPrincipalKey(t *testing.T) {
	anon, alice, _, _, _ := testPeople()
	tests := []struct {
		name string
		p    Principal
		ip   string
		want string
	}{
		{name: "user", p: alice, ip: "10.0.0.1", want: "user:alice"},
		{name: "anonymous", p: anon, ip: "10.0.0.1", want: "ip:10.0.0.1"},
		{name: "anonymous with a name", p: Principal{Name: "alice", Anonymous: true}, ip: "10.0.0.1", want: "ip:10.0.0.1"},
		{name: "port dropped", p: anon, ip: "10.0.0.1:5555", want: "ip:10.0.0.1"},
		{name: "ipv6 with port", p: anon, ip: "[2001:db8::1]:443", want: "ip:2001:db8::1"},
		{name: "mapped ipv4", p: anon, ip: "::ffff:10.0.0.1", want: "ip:10.0.0.1"},
		{name: "unparsable kept", p: anon, ip: "unknown", want: "ip:unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrincipalKey(tt.p, tt.ip); got != tt.want {
				t.Errorf("PrincipalKey = %q, want %q", got, tt.want)
			}
		})
	}
}
