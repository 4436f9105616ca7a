package node

import (
	"net/http"
	"strings"
	"testing"
)

// With auth on, the admin listener serves metrics and health to anyone
// and everything else (profiles, the config in force, the admin API) to
// members of the admin group only.
func TestAdminListenerNeedsAnAdmin(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
`)
	e.htpasswd("alice:alice-pw", "bob:bob-pw")
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
auth: {enabled: true, htpasswd: DIR/htpasswd, groups: {admins: [alice]}}
`)
	tests := []struct {
		path, user string
		want       int
	}{
		{"/metrics", "", http.StatusOK},
		{"/healthz", "", http.StatusOK},
		{"/config", "", http.StatusUnauthorized},
		{"/config", "bob:bob-pw", http.StatusForbidden},
		{"/config", "alice:alice-pw", http.StatusOK},
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/cmdline", "bob:bob-pw", http.StatusForbidden},
		{"/debug/pprof/cmdline", "alice:alice-pw", http.StatusOK},
		{"/ui/", "", http.StatusUnauthorized},
		{"/ui/api/status", "bob:bob-pw", http.StatusForbidden},
		{"/ui/app.js", "bob:bob-pw", http.StatusForbidden},
		{"/ui/", "alice:alice-pw", http.StatusOK},
		{"/ui/api/status", "alice:alice-pw", http.StatusOK},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, e.admin.URL+tt.path, nil)
		if name, pw, ok := strings.Cut(tt.user, ":"); ok {
			req.SetBasicAuth(name, pw)
		}
		if got := e.do(req, nil); got != tt.want {
			t.Errorf("GET %s as %q: %d, want %d", tt.path, tt.user, got, tt.want)
		}
	}
}

// TestAdminListenerRefusesOtherHosts: on a loopback admin listener, a
// request naming a host that is not loopback (a web page that rebound its
// name to 127.0.0.1) reaches nothing but the monitoring endpoints: not
// the admin API, the bundle import, the config or the profiles.
func TestAdminListenerRefusesOtherHosts(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
`)
	tests := []struct {
		method, path, ctype string
		want                int
	}{
		{http.MethodGet, "/metrics", "", http.StatusOK},
		{http.MethodGet, "/healthz", "", http.StatusOK},
		{http.MethodGet, "/config", "", http.StatusForbidden},
		{http.MethodGet, "/debug/pprof/cmdline", "", http.StatusForbidden},
		{http.MethodGet, "/ui/", "", http.StatusForbidden},
		{http.MethodPost, "/admin/v1/import", "application/x-tar", http.StatusForbidden},
		{http.MethodPost, "/admin/v1/import-vulndb", "application/zip", http.StatusForbidden},
		{http.MethodPost, "/admin/v1/export", "application/json", http.StatusForbidden},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.admin.URL+tt.path, strings.NewReader(""))
		req.Host = "rebound.example:5001"
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		if got := e.do(req, nil); got != tt.want {
			t.Errorf("%s %s with Host %s = %d, want %d", tt.method, tt.path, req.Host, got, tt.want)
		}
	}
}
