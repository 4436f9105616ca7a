package config

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Upstream{Name: "hub", Registry: "docker.io", URL: "https://registry-1.docker.io", Default: true}
	tests := []struct {
		name  string
		rules []Upstream
		// want are substrings that must all appear in the error; none means
		// the rules are valid.
		want []string
	}{
		{name: "valid", rules: []Upstream{
			ok,
			{Name: "ghcr", Prefix: "ghcr", Registry: "ghcr.io", URL: "https://ghcr.io/", TTL: time.Hour},
			{Name: "local", Prefix: "local", URL: "http://127.0.0.1:5000", Username: "u", PasswordFile: "/p"},
		}},
		{name: "no rules", rules: nil},
		{name: "missing name", rules: []Upstream{{Prefix: "p", URL: "https://r.example"}},
			want: []string{"upstreams[0].name: required"}},
		{name: "duplicate name", rules: []Upstream{ok, {Name: "hub", Prefix: "p", URL: "https://r.example"}},
			want: []string{`upstreams[1].name: "hub" is used twice`}},
		{name: "duplicate prefix", rules: []Upstream{
			{Name: "a", Prefix: "p", URL: "https://a.example"},
			{Name: "b", Prefix: "p", URL: "https://b.example"},
		}, want: []string{`upstreams[1].prefix: "p" is used twice`}},
		{name: "bad prefix", rules: []Upstream{{Name: "a", Prefix: "a/b", URL: "https://a.example"}},
			want: []string{`upstreams[0].prefix: "a/b" is not a single lower-case name component`}},
		{name: "upper-case prefix", rules: []Upstream{{Name: "a", Prefix: "Ab", URL: "https://a.example"}},
			want: []string{`upstreams[0].prefix: "Ab"`}},
		{name: "duplicate registry, case-insensitive", rules: []Upstream{
			{Name: "a", Registry: "ghcr.io", URL: "https://a.example"},
			{Name: "b", Registry: "GHCR.io", URL: "https://b.example"},
		}, want: []string{`upstreams[1].registry: "GHCR.io" is used twice`}},
		{name: "missing url", rules: []Upstream{{Name: "a", Prefix: "a"}},
			want: []string{"upstreams[0].url: required"}},
		{name: "bad scheme", rules: []Upstream{{Name: "a", Prefix: "a", URL: "ftp://a.example"}},
			want: []string{`upstreams[0].url: scheme must be http or https, not "ftp"`}},
		{name: "no host", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https:///x"}},
			want: []string{"upstreams[0].url: no host"}},
		{name: "url with path", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example/v2/"}},
			want: []string{`upstreams[0].url: a path is not supported ("/v2/")`}},
		{name: "unreachable rule", rules: []Upstream{{Name: "a", URL: "https://a.example"}},
			want: []string{"upstreams[0]: needs a prefix, a registry or default: true"}},
		{name: "two defaults", rules: []Upstream{ok, {Name: "b", Default: true, URL: "https://b.example"}},
			want: []string{"upstreams: 2 rules are marked default"}},
		{name: "negative durations", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example", TTL: -1, Timeout: -time.Second, IdleTimeout: -time.Minute}},
			want: []string{"upstreams[0].ttl: must not be negative", "upstreams[0].timeout: must not be negative", "upstreams[0].idleTimeout: must not be negative"}},
		{name: "allowed hosts", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example",
			AllowedHosts: []string{"auth.a.example", "cdn.example:8443", "*.blobs.example", "10.0.0.5", "[fd00::5]:443"}}}},
		{name: "bad allowed hosts", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example",
			AllowedHosts: []string{"https://auth.a.example", "cdn.example:0", "", "a*.example"}}},
			want: []string{`upstreams[0].allowedHosts[0]: "https://auth.a.example" is not a host name`,
				`upstreams[0].allowedHosts[1]: "cdn.example:0" has a bad port`,
				`upstreams[0].allowedHosts[2]: "" is not a host name`,
				`upstreams[0].allowedHosts[3]: "a*.example" is not a host name`}},
		{name: "tls files", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example", CAFile: "/ca", CertFile: "/c", KeyFile: "/k"}}},
		{name: "cert without key", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example", CertFile: "/c"}},
			want: []string{"upstreams[0]: certFile and keyFile go together"}},
		{name: "tls over http", rules: []Upstream{{Name: "a", Prefix: "a", URL: "http://a.example", InsecureSkipVerify: true}},
			want: []string{"upstreams[0]: caFile, certFile, keyFile and insecureSkipVerify need an https url"}},
		{name: "password file without username", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example", PasswordFile: "/p"}},
			want: []string{"upstreams[0].passwordFile: needs username"}},
		{name: "password file and docker config", rules: []Upstream{{Name: "a", Prefix: "a", URL: "https://a.example", Username: "u", PasswordFile: "/p", DockerConfig: "/c"}},
			want: []string{"upstreams[0]: give passwordFile or dockerConfig, not both"}},
		{name: "every problem at once", rules: []Upstream{
			{Prefix: "p", URL: "ftp://a.example"},
			{Name: "b", Prefix: "p", Registry: "r.io", URL: "https://b.example/path", Default: true},
			{Name: "b", Registry: "R.IO", URL: "https://c.example", Default: true, TTL: -1},
			{Name: "d", URL: "https://d.example", Timeout: -1, IdleTimeout: -1, PasswordFile: "/p"},
		}, want: []string{
			"upstreams[0].name: required",
			`upstreams[0].url: scheme must be http or https, not "ftp"`,
			`upstreams[1].url: a path is not supported ("/path")`,
			`upstreams[1].prefix: "p" is used twice`,
			`upstreams[2].name: "b" is used twice`,
			`upstreams[2].registry: "R.IO" is used twice`,
			"upstreams[2].ttl: must not be negative",
			"upstreams[3]: needs a prefix, a registry or default: true",
			"upstreams[3].timeout: must not be negative",
			"upstreams[3].idleTimeout: must not be negative",
			"upstreams[3].passwordFile: needs username",
			"upstreams: 2 rules are marked default",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkUpstreamProblems(t, tt.rules, tt.want) })
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Upstream
		want Upstream
	}{
		{name: "empty", in: Upstream{}, want: Upstream{TTL: DefaultTTL, Timeout: DefaultTimeout, IdleTimeout: DefaultIdleTimeout}},
		{name: "kept", in: Upstream{TTL: time.Minute, Timeout: time.Second, IdleTimeout: 2 * time.Second},
			want: Upstream{TTL: time.Minute, Timeout: time.Second, IdleTimeout: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIsDockerHub(t *testing.T) {
	tests := []struct {
		name string
		rule Upstream
		want bool
	}{
		{name: "registry docker.io", rule: Upstream{Registry: "docker.io", URL: "https://mirror.example"}, want: true},
		{name: "url registry-1", rule: Upstream{URL: "https://registry-1.docker.io"}, want: true},
		{name: "url index", rule: Upstream{URL: "https://index.docker.io"}, want: true},
		{name: "registry in upper case", rule: Upstream{Registry: "Docker.IO", URL: "https://mirror.example"}, want: true},
		{name: "url host in upper case", rule: Upstream{URL: "https://Registry-1.Docker.IO"}, want: true},
		{name: "docker.io.example is not hub", rule: Upstream{Registry: "docker.io.example", URL: "https://docker.io.example"}, want: false},
		{name: "ghcr", rule: Upstream{Registry: "ghcr.io", URL: "https://ghcr.io"}, want: false},
		{name: "local", rule: Upstream{URL: "http://127.0.0.1:5000"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.IsDockerHub(); got != tt.want {
				t.Errorf("IsDockerHub() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateQuota(t *testing.T) {
	base := Upstream{Name: "hub", Registry: "docker.io", URL: "https://registry-1.docker.io"}
	with := func(edit func(*Upstream)) []Upstream {
		r := base
		edit(&r)
		return []Upstream{r}
	}
	pool := []Credential{{Username: "a", PasswordFile: "/a"}, {Username: "b", PasswordFile: "/b"}}
	tests := []struct {
		name  string
		rules []Upstream
		want  []string
	}{
		{name: "rate limit", rules: with(func(r *Upstream) { r.RequestsPerSecond, r.Burst = 0.5, 3 })},
		{name: "rate limit without burst", rules: with(func(r *Upstream) { r.RequestsPerSecond = 10 })},
		{name: "pool", rules: with(func(r *Upstream) { r.Credentials = pool })},
		{name: "pool of one", rules: with(func(r *Upstream) { r.Credentials = pool[:1] })},
		{name: "negative rate", rules: with(func(r *Upstream) { r.RequestsPerSecond = -1 }),
			want: []string{"upstreams[0].requestsPerSecond: must be a finite number, 0 or more"}},
		{name: "NaN rate", rules: with(func(r *Upstream) { r.RequestsPerSecond = math.NaN() }),
			want: []string{"upstreams[0].requestsPerSecond: must be a finite number"}},
		{name: "infinite rate", rules: with(func(r *Upstream) { r.RequestsPerSecond = math.Inf(1) }),
			want: []string{"upstreams[0].requestsPerSecond: must be a finite number"}},
		{name: "negative burst", rules: with(func(r *Upstream) { r.RequestsPerSecond, r.Burst = 1, -1 }),
			want: []string{"upstreams[0].burst: must not be negative"}},
		{name: "burst without rate", rules: with(func(r *Upstream) { r.Burst = 5 }),
			want: []string{"upstreams[0].burst: needs requestsPerSecond"}},
		{name: "pool and username", rules: with(func(r *Upstream) { r.Credentials, r.Username = pool, "u" }),
			want: []string{"upstreams[0]: give credentials or username/passwordFile, not both"}},
		{name: "pool and docker config", rules: with(func(r *Upstream) { r.Credentials, r.DockerConfig = pool, "/c" }),
			want: []string{"upstreams[0]: give credentials or dockerConfig, not both"}},
		{name: "every problem at once", rules: []Upstream{
			base,
			{Name: "b", Prefix: "b", URL: "https://b.example", RequestsPerSecond: -2, Burst: -1,
				Username: "u", PasswordFile: "/p", DockerConfig: "/c",
				Credentials: []Credential{{Username: "a", PasswordFile: "/a"}, {PasswordFile: "/x"}, {Username: "a"}}},
			{Name: "c", Prefix: "c", URL: "https://c.example", Burst: 2, PasswordFile: "/p"},
		}, want: []string{
			"upstreams[1]: give passwordFile or dockerConfig, not both",
			"upstreams[1].requestsPerSecond: must be a finite number, 0 or more",
			"upstreams[1].burst: must not be negative",
			"upstreams[1]: give credentials or username/passwordFile, not both",
			"upstreams[1]: give credentials or dockerConfig, not both",
			"upstreams[1].credentials[1].username: required",
			`upstreams[1].credentials[2].username: "a" is used twice`,
			"upstreams[1].credentials[2].passwordFile: required",
			"upstreams[2].passwordFile: needs username",
			"upstreams[2].burst: needs requestsPerSecond",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkUpstreamProblems(t, tt.rules, tt.want) })
	}
}

func TestWithDefaultsBurst(t *testing.T) {
	tests := []struct {
		name      string
		rps       float64
		burst     int
		wantBurst int
	}{
		{name: "no limit, no burst", rps: 0, burst: 0, wantBurst: 0},
		{name: "burst from the rate", rps: 20, wantBurst: 20},
		{name: "fractional rate rounds up", rps: 2.5, wantBurst: 3},
		{name: "slow rate, burst of one", rps: 0.1, wantBurst: 1},
		{name: "given burst kept", rps: 20, burst: 5, wantBurst: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Upstream{RequestsPerSecond: tt.rps, Burst: tt.burst}.WithDefaults()
			if got.Burst != tt.wantBurst || got.RequestsPerSecond != tt.rps {
				t.Errorf("WithDefaults() = %g/%d, want %g/%d", got.RequestsPerSecond, got.Burst, tt.rps, tt.wantBurst)
			}
		})
	}
}

// checkUpstreamProblems validates rules and wants exactly the problems
// that contain want, each; none means the rules are valid.
func checkUpstreamProblems(t *testing.T, rules []Upstream, want []string) {
	t.Helper()
	err := ValidateUpstreams(rules)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("ValidateUpstreams: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("ValidateUpstreams accepted the rules; want errors %q", want)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q; got:\n%s", w, msg)
		}
	}
	if got := len(strings.Split(msg, "\n")); got != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", got, len(want), msg)
	}
}
