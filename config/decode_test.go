package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestParseProblems: a file's mistakes are each reported in the file's
// terms (key path, what was expected, the value given, the line), together
// with the semantic problems, in one error.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // every problem, in order
	}{
		{
			name: "bytes not an integer",
			body: "cache:\n  maxBytes: lots\n",
			want: []string{`cache.maxBytes: expected an integer (bytes), got "lots" (line 2)`},
		},
		{
			name: "integer not a number",
			body: "rateLimit:\n  burst: 1.5\n",
			want: []string{`rateLimit.burst: expected an integer, got 1.5 (line 2)`},
		},
		{
			name: "number given as a word",
			body: "cache:\n  highWatermark: most\n",
			want: []string{`cache.highWatermark: expected a number, got "most" (line 2)`},
		},
		{
			name: "bool",
			body: "auth:\n  enabled: maybe\n",
			want: []string{`auth.enabled: expected true or false, got "maybe" (line 2)`},
		},
		{
			name: "quoted number is a string",
			body: "audit:\n  keep: \"5\"\n",
			want: []string{`audit.keep: expected an integer, got "5" (line 2)`},
		},
		{
			name: "list where a string goes",
			body: "listen:\n  - :5000\n",
			want: []string{`listen: expected a string, got a list (line 2)`},
		},
		{
			name: "string where a section goes",
			body: "cache: big\n",
			want: []string{`cache: expected a mapping of keys, got "big" (line 1)`},
		},
		{
			name: "string where a list goes",
			body: "local:\n  prefixes: private\n",
			want: []string{`local.prefixes: expected a list, got "private" (line 2)`},
		},
		{
			name: "in a list and a map",
			body: "upstreams:\n  - name: a\n    url: https://a.example\n    default: true\n    credentials:\n      - username: [u]\n" +
				"rateLimit:\n  users:\n    alice:\n      burst: many\n",
			want: []string{
				`upstreams[0].credentials[0].username: expected a string, got a list (line 6)`,
				`rateLimit.users.alice.burst: expected an integer, got "many" (line 10)`,
				// the semantic problems of what did decode come after
				"upstreams[0].credentials[0].passwordFile: required",
				"rateLimit.users.alice: requestsPerSecond must be positive and burst at least 1",
			},
		},
		{
			name: "unknown keys at every level",
			body: "cache:\n  maxbytes: 5\nauth:\n  policies:\n    - repository: a\n      polcy: x\n",
			want: []string{
				"cache.maxbytes: unknown key; the keys here are hotManifestBytes, fillTimeout, maxBytes,",
				"auth.policies[0].polcy: unknown key",
			},
		},
		{
			name: "key given twice",
			body: "listen: \":5000\"\ndataDir: /a\nlisten: \":6000\"\n",
			want: []string{"listen: given twice (first on line 1) (line 3)"},
		},
		{
			name: "not a mapping at all",
			body: "- listen\n",
			want: []string{"the file: expected a mapping of keys, got a list (line 1)"},
		},
		{
			name: "syntax error",
			body: "listen: [\n",
			want: []string{"yaml: line 1"},
		},
		{
			name: "type and semantic problems at once",
			body: "listen: \"5000\"\nshutdownTimeout: soon\nlog:\n  format: xml\n",
			want: []string{
				`shutdownTimeout: expected a duration such as "90s", "1h30m" or "24h", got "soon" (line 2)`,
				`listen: "5000" is not host:port`,
				`log.format: "xml" is not json or console`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse: %v, want an *Error", err)
			}
			if len(e.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(e.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := e.Problems[i].Error(); !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got, w)
				}
			}
		})
	}
}

// TestParseValues: what decodes lands where it should, keys left out keep
// their defaults, and lists and maps in the file replace the defaults.
func TestParseValues(t *testing.T) {
	body := "listen: 127.0.0.1:5000\ncache:\n  maxBytes: 1073741824\n  fillTimeout: 90m\n" +
		"local:\n  prefixes: [mine, ours]\nauth:\n  groups:\n    devs: [alice, bob]\n" +
		"rateLimit:\n  requestsPerSecond: 10\n  burst: 20\naudit:\n  path:\n"
	c, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:5000" || c.Cache.MaxBytes != 1<<30 || c.Cache.FillTimeout != 90*time.Minute {
		t.Errorf("listen %q maxBytes %d fillTimeout %v", c.Listen, c.Cache.MaxBytes, c.Cache.FillTimeout)
	}
	if c.Cache.HighWatermark != 0.9 || c.Cache.HotManifestBytes != 64<<20 || c.DataDir != "./berth-data" {
		t.Errorf("keys left out lost their defaults: %+v %q", c.Cache, c.DataDir)
	}
	if got := strings.Join(c.Local.Prefixes, ","); got != "mine,ours" {
		t.Errorf("local.prefixes = %q, want the file's list alone", got)
	}
	if got := strings.Join(c.Auth.Groups["devs"], ","); got != "alice,bob" {
		t.Errorf("auth.groups.devs = %q", got)
	}
	if c.RateLimit.RequestsPerSecond != 10 || c.RateLimit.Burst != 20 {
		t.Errorf("rateLimit = %+v", c.RateLimit)
	}
	if len(c.Upstreams) != 1 || c.Upstreams[0].Name != "docker-hub" {
		t.Errorf("a file without upstreams keeps the default: %+v", c.Upstreams)
	}
	if c.Audit.Path != "" {
		t.Errorf("audit.path = %q, want empty", c.Audit.Path)
	}
	if c.Auth.TokenTTL != 12*time.Hour || c.Auth.AdminGroup != "admins" {
		t.Errorf("auth defaults lost: %+v", c.Auth)
	}
}

// TestSource: a loaded file is identified by its path, the hash of its
// bytes and the time it was read; the defaults have no path and no hash.
func TestSource(t *testing.T) {
	body := "listen: \":5000\"\n"
	path := writeConfig(t, body)
	before := time.Now()
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if c.Source.Path != path || c.Source.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("source = %+v, want path %s and hash %x", c.Source, path, sum)
	}
	if c.Source.LoadedAt.Before(before) {
		t.Errorf("loadedAt %v is before the load began (%v)", c.Source.LoadedAt, before)
	}
	d, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if d.Source.Path != "" || d.Source.Hash != "" || d.Source.LoadedAt.IsZero() {
		t.Errorf("defaults' source = %+v", d.Source)
	}
}

// TestLoadChecks: a caller's checks see the decoded config and add their
// problems to config's own, in the one error that names the file.
func TestLoadChecks(t *testing.T) {
	path := writeConfig(t, "listen: nowhere\ndataDir: /srv/berth\n")
	var saw string
	check := func(c Config) []error {
		saw = c.DataDir
		return []error{errors.New("dataDir: not mounted")}
	}
	_, err := Load(path, check)
	if saw != "/srv/berth" {
		t.Errorf("the check saw dataDir %q", saw)
	}
	want := "invalid config " + path + ":\nlisten: \"nowhere\" is not host:port (address nowhere: missing port in address)\ndataDir: not mounted"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if _, err := Load(path + ".missing"); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Errorf("missing file: %v", err)
	}
}

// TestParseMergeKeys: "<<: *anchor" shares keys between entries; an
// entry's own keys win.
func TestParseMergeKeys(t *testing.T) {
	body := `
upstreams:
  - &common
    name: hub
    url: https://registry-1.docker.io
    default: true
    ttl: 1h
    timeout: 5s
  - <<: *common
    name: quay
    prefix: quay
    url: https://quay.io
    default: false
`
	c, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	q := c.Upstreams[1]
	if q.Name != "quay" || q.URL != "https://quay.io" || q.Default || q.TTL != time.Hour || q.Timeout != 5*time.Second {
		t.Errorf("merged upstream = %+v", q)
	}
	_, err = Parse([]byte("upstreams:\n  - <<: [1]\n"))
	if err == nil || !strings.Contains(err.Error(), "upstreams[0]: expected a mapping to merge with <<, got 1") {
		t.Errorf("merging a number: %v", err)
	}
}
