package node

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"berth/auth"
	"berth/config"
)

// TestLoadConfigChecksFiles: check-config and a reload refuse a file whose
// policies, certificates or cluster secret do not load, with every problem
// in the one error, next to config's own.
func TestLoadConfigChecksFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	body := `
log:
  level: loud
auth:
  enabled: true
  htpasswd: /dev/null
  policies:
    - repository: a
      policy: '{"Version": "2012-10-17"'
    - namespace: "b/*"
      file: ` + filepath.Join(dir, "none.json") + `
tls:
  listen: ":5443"
  certFile: ` + write("cert.pem", "not a certificate") + `
  keyFile: ` + write("key.pem", "not a key") + `
cluster:
  gossipAddr: "127.0.0.1:7946"
  peerAddr: "127.0.0.1:5002"
  secretFile: ` + write("secret", "short") + `
`
	_, err := LoadConfig(write("berth.yaml", body))
	if err == nil {
		t.Fatal("loadConfig accepted the config")
	}
	for _, w := range []string{
		`log.level: "loud"`,
		"auth.policies[0]: ",
		"auth.policies[1]: read policy: ",
		"tls: ",
		"cluster.secretFile: ",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != 5 {
		t.Errorf("got %d problems, want 5:\n%v", n, err)
	}
}

// TestDefaultGrants: config's default grants are auth's.
func TestDefaultGrants(t *testing.T) {
	d := auth.DefaultDefaults()
	want := auth.Defaults{
		Anonymous:     grants(config.Default().Auth.Anonymous),
		Authenticated: grants(config.Default().Auth.Authenticated),
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("config's default grants %+v, auth's %+v", want, d)
	}
}
