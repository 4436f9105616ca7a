package upstream

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Rule{Name: "hub", Registry: "docker.io", URL: "https://registry-1.docker.io", Default: true}
	tests := []struct {
		name  string
		rules []Rule
		// want are substrings that must all appear in the error; none means
		// the rules are valid.
		want []string
	}{
		{name: "valid", rules: []Rule{
			ok,
			{Name: "ghcr", Prefix: "ghcr", Registry: "ghcr.io", URL: "https://ghcr.io/", TTL: time.Hour},
			{Name: "local", Prefix: "local", URL: "http://127.0.0.1:5000", Username: "u", PasswordFile: "/p"},
		}},
		{name: "no rules", rules: nil},
		{name: "missing name", rules: []Rule{{Prefix: "p", URL: "https://r.example"}},
			want: []string{"upstreams[0].name: required"}},
		{name: "duplicate name", rules: []Rule{ok, {Name: "hub", Prefix: "p", URL: "https://r.example"}},
			want: []string{`upstreams[1].name: "hub" is used twice`}},
		{name: "duplicate prefix", rules: []Rule{
			{Name: "a", Prefix: "p", URL: "https://a.example"},
			{Name: "b", Prefix: "p", URL: "https://b.example"},
		}, want: []string{`upstreams[1].prefix: "p" is used twice`}},
		{name: "bad prefix", rules: []Rule{{Name: "a", Prefix: "a/b", URL: "https://a.example"}},
			want: []string{`upstreams[0].prefix: "a/b" is not a single lower-case name component`}},
		{name: "upper-case prefix", rules: []Rule{{Name: "a", Prefix: "Ab", URL: "https://a.example"}},
			want: []string{`upstreams[0].prefix: "Ab"`}},
		{name: "duplicate registry, case-insensitive", rules: []Rule{
			{Name: "a", Registry: "ghcr.io", URL: "https://a.example"},
			{Name: "b", Registry: "GHCR.io", URL: "https://b.example"},
		}, want: []string{`upstreams[1].registry: "GHCR.io" is used twice`}},
		{name: "missing url", rules: []Rule{{Name: "a", Prefix: "a"}},
			want: []string{"upstreams[0].url: required"}},
		{name: "bad scheme", rules: []Rule{{Name: "a", Prefix: "a", URL: "ftp://a.example"}},
			want: []string{`upstreams[0].url: scheme must be http or https, not "ftp"`}},
		{name: "no host", rules: []Rule{{Name: "a", Prefix: "a", URL: "https:///x"}},
			want: []string{"upstreams[0].url: no host"}},
		{name: "url with path", rules: []Rule{{Name: "a", Prefix: "a", URL: "https://a.example/v2/"}},
			want: []string{`upstreams[0].url: a path is not supported ("/v2/")`}},
		{name: "unreachable rule", rules: []Rule{{Name: "a", URL: "https://a.example"}},
			want: []string{"upstreams[0]: needs a prefix, a registry or default: true"}},
		{name: "two defaults", rules: []Rule{ok, {Name: "b", Default: true, URL: "https://b.example"}},
			want: []string{"upstreams: 2 rules are marked default"}},
		{name: "negative durations", rules: []Rule{{Name: "a", Prefix: "a", URL: "https://a.example", TTL: -1, Timeout: -time.Second, IdleTimeout: -time.Minute}},
			want: []string{"upstreams[0].ttl: must not be negative", "upstreams[0].timeout: must not be negative", "upstreams[0].idleTimeout: must not be negative"}},
		{name: "password file without username", rules: []Rule{{Name: "a", Prefix: "a", URL: "https://a.example", PasswordFile: "/p"}},
			want: []string{"upstreams[0].passwordFile: needs username"}},
		{name: "password file and docker config", rules: []Rule{{Name: "a", Prefix: "a", URL: "https://a.example", Username: "u", PasswordFile: "/p", DockerConfig: "/c"}},
			want: []string{"upstreams[0]: give passwordFile or dockerConfig, not both"}},
		{name: "every problem at once", rules: []Rule{
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
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.rules)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted the rules; want errors %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%s", w, msg)
				}
			}
			if got := len(strings.Split(msg, "\n")); got != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", got, len(tt.want), msg)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Rule
		want Rule
	}{
		{name: "empty", in: Rule{}, want: Rule{TTL: DefaultTTL, Timeout: DefaultTimeout, IdleTimeout: DefaultIdleTimeout}},
		{name: "kept", in: Rule{TTL: time.Minute, Timeout: time.Second, IdleTimeout: 2 * time.Second},
			want: Rule{TTL: time.Minute, Timeout: time.Second, IdleTimeout: 2 * time.Second}},
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
		rule Rule
		want bool
	}{
		{name: "registry docker.io", rule: Rule{Registry: "docker.io", URL: "https://mirror.example"}, want: true},
		{name: "url registry-1", rule: Rule{URL: "https://registry-1.docker.io"}, want: true},
		{name: "url index", rule: Rule{URL: "https://index.docker.io"}, want: true},
		{name: "registry in upper case", rule: Rule{Registry: "Docker.IO", URL: "https://mirror.example"}, want: true},
		{name: "url host in upper case", rule: Rule{URL: "https://Registry-1.Docker.IO"}, want: true},
		{name: "docker.io.example is not hub", rule: Rule{Registry: "docker.io.example", URL: "https://docker.io.example"}, want: false},
		{name: "ghcr", rule: Rule{Registry: "ghcr.io", URL: "https://ghcr.io"}, want: false},
		{name: "local", rule: Rule{URL: "http://127.0.0.1:5000"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.IsDockerHub(); got != tt.want {
				t.Errorf("IsDockerHub() = %v, want %v", got, tt.want)
			}
		})
	}
}
