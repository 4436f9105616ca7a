package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"go.uber.org/zap/zaptest"
)

// identityNode is an in-process node with auth on and two upstreams:
// "hub" (prefix hub, the default rule), whose repositories anyone may
// pull, and "priv" (registry priv.example, reached only with ns), whose
// repositories only group devs may pull. Both upstreams hold secret/app.
type identityNode struct {
	srv        *httptest.Server
	hub, priv  *testreg.Registry
	privDigest string
}

func newIdentityNode(t *testing.T) *identityNode {
	t.Helper()
	e := &identityNode{hub: testreg.Start(t), priv: testreg.Start(t)}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.hub.Push(t, "secret/app", "v1", img)
	privImg, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.privDigest = e.priv.Push(t, "secret/app", "v1", privImg).String()
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htpasswd, "alice:alice-pw", "bob:bob-pw")
	cfgPath := filepath.Join(dir, "berth.yaml")
	cfg := fmt.Sprintf(`dataDir: %q
upstreams:
  - {name: hub, prefix: hub, registry: hub.example, url: %q, default: true}
  - {name: priv, registry: priv.example, url: %q}
auth:
  enabled: true
  htpasswd: %q
  groups: {devs: [alice]}
  anonymous: {cached: []}
  authenticated: {cached: []}
  policies:
    - namespace: "hub/*"
      policy: '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"pull"}]}'
    - namespace: "priv/*"
      policy: '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"group:devs"},"Action":"pull"}]}'
`, filepath.Join(dir, "data"), e.hub.URL, e.priv.URL, htpasswd)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), c, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	e.srv = httptest.NewServer(n.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// token asks the token endpoint for scope, with Basic credentials when
// user is set; realm is the URL the challenge named (or the plain one).
func (e *identityNode) token(t *testing.T, realm, scope, user string) string {
	t.Helper()
	if realm == "" {
		realm = e.srv.URL + "/token"
	}
	u, err := url.Parse(realm)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("scope", scope)
	q.Set("service", "berth")
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token %s: status %d, %v", u, resp.StatusCode, err)
	}
	return body.Token
}

// get fetches path with a bearer token and returns the status and the
// challenge's realm.
func (e *identityNode) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	realm := ""
	if c := resp.Header.Get("WWW-Authenticate"); c != "" {
		_, rest, _ := strings.Cut(c, `realm="`)
		realm, _, _ = strings.Cut(rest, `"`)
	}
	return resp.StatusCode, realm
}

// A token is good only for the canonical repository it was granted for:
// one granted for secret/app through the default rule (hub/secret/app)
// does not read secret/app of the ns-routed private upstream.
func TestTokenIsBoundToTheCanonicalRepository(t *testing.T) {
	e := newIdentityNode(t)
	anon := e.token(t, "", "repository:secret/app:pull", "")
	if st, _ := e.get(t, "/v2/secret/app/manifests/v1", anon); st != http.StatusOK {
		t.Fatalf("hub pull with its token: status %d, want 200", st)
	}
	e.priv.Reset()
	st, realm := e.get(t, "/v2/secret/app/manifests/v1?ns=priv.example", anon)
	if st != http.StatusUnauthorized {
		t.Fatalf("private upstream read with the default rule's token: status %d, want 401", st)
	}
	if n := e.priv.Count("GET manifests"); n != 0 {
		t.Fatalf("the private upstream was asked %d times for the manifest", n)
	}
	// The challenge sends the client to a realm that resolves the scope
	// with the same ns: an anonymous token from it grants nothing there,
	// and a dev's grants the private repository.
	if !strings.Contains(realm, "ns=priv.example") {
		t.Fatalf("challenge realm %q does not carry the ns", realm)
	}
	if st, _ := e.get(t, "/v2/secret/app/manifests/v1?ns=priv.example", e.token(t, realm, "repository:secret/app:pull", "")); st != http.StatusUnauthorized {
		t.Fatalf("anonymous token from the ns realm: status %d, want 401", st)
	}
	if st, _ := e.get(t, "/v2/secret/app/manifests/v1?ns=priv.example", e.token(t, realm, "repository:secret/app:pull", "bob")); st != http.StatusForbidden {
		t.Fatalf("bob (not a dev) with the ns realm's token: status %d, want 403", st)
	}
	dev := e.token(t, realm, "repository:secret/app:pull", "alice")
	if st, _ := e.get(t, "/v2/secret/app/manifests/"+e.privDigest+"?ns=priv.example", dev); st != http.StatusOK {
		t.Fatalf("alice (a dev) with the ns realm's token: status %d, want 200", st)
	}
	// And the other way round: the dev's private grant does not read
	// the hub's repository of the same name.
	if st, _ := e.get(t, "/v2/secret/app/manifests/v1", dev); st != http.StatusForbidden {
		t.Fatalf("hub read with a token granted for priv/secret/app: status %d, want 403", st)
	}
}

// A repository reached by its registry's host name in the path
// (/v2/priv.example/secret/app) is the one reached with ns: a token
// granted for either name reads both, the policies of priv/* apply, and a
// token of the default rule's secret/app reads neither.
func TestHostNamedRouteIsTheNSRepository(t *testing.T) {
	e := newIdentityNode(t)
	byHost := "/v2/priv.example/secret/app/manifests/" + e.privDigest
	byNS := "/v2/secret/app/manifests/" + e.privDigest + "?ns=priv.example"

	anon := e.token(t, "", "repository:secret/app:pull", "")
	if st, _ := e.get(t, byHost, anon); st != http.StatusUnauthorized {
		t.Fatalf("host-named read with the default rule's token: status %d, want 401", st)
	}
	if st, _ := e.get(t, byHost, e.token(t, "", "repository:priv.example/secret/app:pull", "bob")); st != http.StatusForbidden {
		t.Fatalf("bob (not a dev) by host name: status %d, want 403", st)
	}
	byHostToken := e.token(t, "", "repository:priv.example/secret/app:pull", "alice")
	if st, _ := e.get(t, byHost, byHostToken); st != http.StatusOK {
		t.Fatalf("alice by host name: status %d, want 200", st)
	}
	if st, _ := e.get(t, byNS, byHostToken); st != http.StatusOK {
		t.Fatalf("alice's host-named token by ns: status %d, want 200", st)
	}
	byNSToken := e.token(t, e.srv.URL+"/token?ns=priv.example", "repository:secret/app:pull", "alice")
	if st, _ := e.get(t, byHost, byNSToken); st != http.StatusOK {
		t.Fatalf("alice's ns token by host name: status %d, want 200", st)
	}
	if st, _ := e.get(t, "/v2/secret/app/manifests/v1", byHostToken); st != http.StatusForbidden {
		t.Fatalf("hub read with the host-named token: status %d, want 403", st)
	}
	if n := e.priv.Count("GET manifests"); n != 1 {
		t.Errorf("the private upstream was asked %d times for the manifest, want once (one repository)", n)
	}
}
