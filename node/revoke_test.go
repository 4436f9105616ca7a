package node

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// berth revoke-tokens ends every token a user holds, at once and across a
// reload; the user's password keeps working.
func TestRevokeTokens(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
`)
	e.htpasswd("alice:alice-pw", "bob:bob-pw")
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
auth: {enabled: true, htpasswd: DIR/htpasswd, groups: {admins: [alice]}}
`)
	token := func() string {
		req, _ := http.NewRequest(http.MethodGet, e.reg.URL+"/token?service=berth&scope=repository:b/lib/app:pull", nil)
		req.SetBasicAuth("bob", "bob-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &body); err != nil || body.Token == "" {
			t.Fatalf("token: %d %s", resp.StatusCode, b)
		}
		return body.Token
	}
	pull := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, e.reg.URL+"/v2/b/lib/app/manifests/v1", nil)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
		req.Header.Set("Authorization", "Bearer "+tok)
		return e.do(req, nil)
	}
	old := token()
	if st := pull(old); st != http.StatusOK {
		t.Fatalf("pull with bob's token: %d", st)
	}
	req, _ := http.NewRequest(http.MethodPost, e.admin.URL+"/admin/v1/revoke-tokens", strings.NewReader(`{"userName":"bob"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("alice", "alice-pw")
	if st := e.do(req, nil); st != http.StatusOK {
		t.Fatalf("revoke-tokens: %d", st)
	}
	if st := pull(old); st != http.StatusUnauthorized {
		t.Fatalf("pull with a revoked token: %d, want 401", st)
	}
	if err := e.reload(); err != nil {
		t.Fatal(err)
	}
	if st := pull(old); st != http.StatusUnauthorized {
		t.Fatalf("pull with a revoked token after a reload: %d, want 401", st)
	}
	if st := pull(token()); st != http.StatusOK {
		t.Fatalf("pull with a token issued after the revocation (the password still works): %d", st)
	}
}
