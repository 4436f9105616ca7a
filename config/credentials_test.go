package config

import "testing"

// What a rule with credentials fetches stays with the cached repository it
// was fetched for (see store.Origin): every way of giving a rule an
// account counts.
func TestHasCredentials(t *testing.T) {
	for _, tt := range []struct {
		name string
		rule Upstream
		want bool
	}{
		{"anonymous", Upstream{Name: "hub", URL: "https://registry-1.docker.io"}, false},
		{"a CA alone", Upstream{Name: "in", CAFile: "/etc/ca.pem"}, false},
		{"user and password", Upstream{Username: "u", PasswordFile: "/p"}, true},
		{"user alone", Upstream{Username: "u"}, true},
		{"docker config", Upstream{DockerConfig: "/c.json"}, true},
		{"credential pool", Upstream{Credentials: []Credential{{Username: "a", PasswordFile: "/a"}}}, true},
		{"client certificate", Upstream{CertFile: "/c.pem", KeyFile: "/k.pem"}, true},
	} {
		if got := tt.rule.HasCredentials(); got != tt.want {
			t.Errorf("%s: HasCredentials() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
