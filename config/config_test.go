package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes body to a config file in a fresh temporary directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		check func(t *testing.T, c Config)
	}{
		{
			name: "example file",
			path: "../config.example.yaml",
			check: func(t *testing.T, c Config) {
				if c.Listen != ":5000" {
					t.Errorf("listen = %q, want :5000", c.Listen)
				}
				if c.ShutdownTimeout != 30*time.Second {
					t.Errorf("shutdownTimeout = %v, want 30s", c.ShutdownTimeout)
				}
				if len(c.Upstreams) != 4 {
					t.Fatalf("got %d upstreams, want 4: %+v", len(c.Upstreams), c.Upstreams)
				}
				hub := c.Upstreams[0]
				if hub.Name != "docker-hub" || hub.Prefix != "docker-hub" || hub.Registry != "docker.io" ||
					hub.URL != "https://registry-1.docker.io" || !hub.Default {
					t.Errorf("docker-hub rule = %+v", hub)
				}
				if hub.TTL != 24*time.Hour || hub.Timeout != 3*time.Second || hub.IdleTimeout != 30*time.Second {
					t.Errorf("docker-hub ttl/timeout/idleTimeout = %v/%v/%v, want 24h/3s/30s", hub.TTL, hub.Timeout, hub.IdleTimeout)
				}
				want := []struct{ name, prefix, registry, url string }{
					{"quay", "quay", "quay.io", "https://quay.io"},
					{"ghcr", "ghcr", "ghcr.io", "https://ghcr.io"},
					{"k8s", "k8s", "registry.k8s.io", "https://registry.k8s.io"},
				}
				for i, w := range want {
					r := c.Upstreams[i+1]
					if r.Name != w.name || r.Prefix != w.prefix || r.Registry != w.registry || r.URL != w.url || r.Default {
						t.Errorf("upstreams[%d] = %+v, want %+v (not default)", i+1, r, w)
					}
					if r.TTL != 24*time.Hour || r.Timeout != 3*time.Second {
						t.Errorf("upstreams[%d] ttl/timeout = %v/%v, want the defaults 24h/3s", i+1, r.TTL, r.Timeout)
					}
				}
				if c.RateLimit.RequestsPerSecond != 200 || c.RateLimit.Burst != 400 || c.RateLimit.Disabled {
					t.Errorf("rateLimit = %+v, want 200/400 enabled", c.RateLimit)
				}
				if c.Cache.HotManifestBytes != 64<<20 || c.Cache.FillTimeout != time.Hour {
					t.Errorf("cache = %+v", c.Cache)
				}
				if c.Log.Format != "json" || c.Log.Level != "info" {
					t.Errorf("log = %+v", c.Log)
				}
			},
		},
		{
			name: "no file gives the defaults",
			path: "",
			check: func(t *testing.T, c Config) {
				if c.Listen != ":5000" || c.DataDir != "./berth-data" {
					t.Errorf("listen, dataDir = %q, %q; want :5000, ./berth-data", c.Listen, c.DataDir)
				}
				if len(c.Upstreams) != 1 {
					t.Fatalf("got %d upstreams, want 1", len(c.Upstreams))
				}
				u := c.Upstreams[0]
				if u.Name != "docker-hub" || !u.Default || u.Registry != "docker.io" || u.URL != "https://registry-1.docker.io" {
					t.Errorf("default upstream = %+v", u)
				}
				if c.RateLimit.RequestsPerSecond != 200 || c.RateLimit.Burst != 400 {
					t.Errorf("rateLimit = %+v", c.RateLimit)
				}
				if c.ShutdownTimeout != 30*time.Second || c.Log.Format != "json" || c.Log.Level != "info" {
					t.Errorf("shutdownTimeout, log = %v, %+v", c.ShutdownTimeout, c.Log)
				}
			},
		},
		{
			name: "durations parse",
			path: "inline",
			check: func(t *testing.T, c Config) {
				if c.ShutdownTimeout != 90*time.Second {
					t.Errorf("shutdownTimeout = %v, want 90s", c.ShutdownTimeout)
				}
				if got := c.Upstreams[0].TTL; got != time.Hour+30*time.Minute {
					t.Errorf("ttl = %v, want 1h30m", got)
				}
				if got := c.Upstreams[0].Timeout; got != 1500*time.Millisecond {
					t.Errorf("timeout = %v, want 1.5s", got)
				}
				if got := c.Cache.FillTimeout; got != 2*time.Hour {
					t.Errorf("fillTimeout = %v, want 2h", got)
				}
			},
		},
		{
			name: "empty durations get the rule defaults",
			path: "minimal",
			check: func(t *testing.T, c Config) {
				u := c.Upstreams[0]
				if u.TTL != 24*time.Hour || u.Timeout != 3*time.Second || u.IdleTimeout != 30*time.Second {
					t.Errorf("ttl/timeout/idleTimeout = %v/%v/%v, want 24h/3s/30s", u.TTL, u.Timeout, u.IdleTimeout)
				}
				if c.Listen != ":5000" || c.DataDir != "./berth-data" {
					t.Errorf("keys left out should keep their defaults: listen %q, dataDir %q", c.Listen, c.DataDir)
				}
			},
		},
		{
			name: "rate limit disabled needs no rate",
			path: "disabled",
			check: func(t *testing.T, c Config) {
				if !c.RateLimit.Disabled {
					t.Error("rateLimit.disabled not set")
				}
			},
		},
	}
	inline := map[string]string{
		"inline": `
shutdownTimeout: 90s
upstreams:
  - name: hub
    registry: docker.io
    url: https://registry-1.docker.io
    default: true
    ttl: 1h30m
    timeout: 1500ms
cache:
  fillTimeout: 2h
`,
		"minimal": `
upstreams:
  - name: hub
    url: https://registry-1.docker.io
    default: true
`,
		"disabled": `
rateLimit:
  requestsPerSecond: 0
  burst: 0
  disabled: true
upstreams:
  - name: hub
    url: https://registry-1.docker.io
    default: true
`,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if body, ok := inline[path]; ok {
				path = writeConfig(t, body)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%q): %v", tt.path, err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		body string
		// want are fragments that must all appear in the one error.
		want []string
	}{
		{
			name: "admin API beyond loopback with auth off",
			body: "admin: {listen: \"0.0.0.0:5001\"}\n",
			want: []string{`admin.listen: "0.0.0.0:5001" is reachable beyond this host while auth is off`, "allowUnauthenticatedRemote"},
		},
		{
			name: "encryption scope unknown",
			body: "encryption: {keyFile: /etc/berth/encryption.key, scope: everything}\n",
			want: []string{`encryption.scope: "everything" is neither "local" nor "all"`},
		},
		{
			name: "admin API on every address with auth off",
			body: "admin: {listen: \":5001\"}\n",
			want: []string{`admin.listen: ":5001" is reachable beyond this host`},
		},
		{
			name: "every problem reported at once",
			body: `
listen: "5000"
upstreams:
  - name: a
    prefix: a
    url: https://a.example
    default: true
    ttl: -1h
  - name: b
    prefix: b
    url: ftp://b.example
    default: true
rateLimit:
  requestsPerSecond: 10
  burst: 0
log:
  format: xml
`,
			want: []string{
				"invalid config",
				`listen: "5000" is not host:port`,
				"2 rules are marked default",
				"upstreams[1].url: scheme must be http or https",
				"upstreams[0].ttl: must not be negative",
				`log.format: "xml"`,
				"rateLimit.burst: must be at least 1",
			},
		},
		{
			name: "unknown key",
			body: "listen: \":5000\"\nlisten_addr: \":6000\"\n",
			want: []string{"listen_addr: unknown key; the keys here are listen, dataDir,"},
		},
		{
			name: "unknown key in an upstream",
			body: "upstreams:\n  - name: a\n    url: https://a.example\n    default: true\n    mirror: true\n",
			want: []string{"upstreams[0].mirror: unknown key; the keys here are name, prefix,"},
		},
		{
			name: "bare number is not a duration",
			body: "shutdownTimeout: 30\n",
			want: []string{`shutdownTimeout: expected a duration such as "90s", "1h30m" or "24h", got 30 (line 1)`},
		},
		{
			name: "bad duration",
			body: "upstreams:\n  - name: a\n    url: https://a.example\n    default: true\n    ttl: a day\n",
			want: []string{`upstreams[0].ttl: expected a duration such as "90s", "1h30m" or "24h", got "a day" (line 5)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.body))
			if err == nil {
				t.Fatal("Load accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestDefaultsOfOptionalSections: sections a file leaves out keep working
// defaults (the admin listener on loopback, audit rotation, auth's token
// lifetime and grants).
func TestDefaultsOfOptionalSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("listen: \":5000\"\nauth:\n  enabled: true\n  htpasswd: /dev/null\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:5001" || cfg.Audit.MaxBytes != 100<<20 || cfg.Audit.Keep != 5 {
		t.Fatalf("admin %+v audit %+v", cfg.Admin, cfg.Audit)
	}
	if cfg.Auth.TokenTTL != 12*time.Hour || len(cfg.Auth.Anonymous.Cached) == 0 || len(cfg.Auth.Authenticated.Local) == 0 {
		t.Fatalf("auth defaults lost: %+v", cfg.Auth)
	}
	if cfg.Encryption.Enabled() || cfg.Encryption.All() {
		t.Fatalf("encryption at rest is on by default: %+v", cfg.Encryption)
	}
}

// The admin listener may leave loopback with auth on, or by the operator's
// explicit word.
func TestAdminBeyondLoopback(t *testing.T) {
	for _, body := range []string{
		"admin: {listen: \"127.0.0.1:5001\"}\n",
		"admin: {listen: \"[::1]:5001\"}\n",
		"admin: {listen: \"localhost:5001\"}\n",
		"admin: {listen: \"0.0.0.0:5001\", allowUnauthenticatedRemote: true}\n",
		"admin: {listen: \"0.0.0.0:5001\"}\nauth: {enabled: true, htpasswd: /etc/berth/htpasswd}\n",
	} {
		if _, err := Parse([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}
