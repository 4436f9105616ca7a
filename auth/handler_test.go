package auth

import (
	"berth/registry"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// tokenServer runs a TokenHandler over httptest with alice (group dev) and
// bob, the test policies and Berth's defaults.
func tokenServer(t *testing.T, authz Authorizer) (*httptest.Server, *Issuer) {
	t.Helper()
	dir := t.TempDir()
	users, err := LoadUsers(UsersSource{
		HtpasswdPath: writeFile(t, dir, "htpasswd", bcryptLine(t, "alice", "wonderland"), bcryptLine(t, "bob", "builder")),
		Groups:       map[string][]string{"dev": {"alice"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	is, err := NewIssuer(IssuerConfig{Keys: []KeyConfig{{PEM: ed25519PEM(t)}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if authz == nil {
		cfg := testPolicies(t)
		cfg.Defaults = &Defaults{Anonymous: DefaultGrants{Cached: []string{ActionPull}},
			Authenticated: DefaultGrants{Cached: []string{ActionPull}, Catalog: true}}
		if authz, err = NewEvaluator(cfg, log); err != nil {
			t.Fatal(err)
		}
	}
	h, err := NewTokenHandler(TokenHandlerConfig{Issuer: is, Authorizer: authz, Resolver: testResolver{}, Users: users}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Client().CloseIdleConnections()
		srv.Close()
	})
	return srv, is
}

// testResolver routes like a node with two upstream rules: "docker-hub"
// (prefix docker-hub/, the default for names without ns) and "priv"
// (reached only with ns=priv.example, canonical names priv/<name>); names
// under private/ and scratch/ are local.
type testResolver struct{}

func (testResolver) Resolve(repo registry.Repo) (registry.Target, error) {
	switch {
	case repo.NS == "priv.example":
		return registry.Target{Name: "priv/" + repo.Name, Upstream: "priv", Remote: repo.Name}, nil
	case repo.NS != "":
		return registry.Target{}, registry.ErrNameUnknown(repo.Name)
	case isCached(repo.Name):
		return registry.Target{Name: repo.Name, Upstream: "docker-hub", Remote: repo.Name}, nil
	}
	return registry.Target{Name: repo.Name}, nil
}

type tokenReply struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Errors      []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func getToken(t *testing.T, srv *httptest.Server, method string, auth func(*http.Request), scopes ...string) (*http.Response, tokenReply) {
	t.Helper()
	q := url.Values{"service": {"berth"}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, srv.URL+"/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r tokenReply
	if len(body) > 0 {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
	}
	return resp, r
}

func basic(user, pw string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pw) }
}

func TestTokenHandler(t *testing.T) {
	srv, is := tokenServer(t, nil)
	tests := []struct {
		name     string
		method   string
		auth     func(*http.Request)
		scopes   []string
		status   int
		wantSub  string
		want     []Access // the token's access claim
		wantCode string   // OCI error code, on failure
	}{
		{name: "anonymous pull of cached", auth: nil, scopes: []string{"repository:docker-hub/library/nginx:pull"},
			status: 200, want: []Access{{"repository", "docker-hub/library/nginx", []string{"pull"}}}},
		{name: "anonymous push trimmed away", scopes: []string{"repository:docker-hub/library/nginx:pull,push"},
			status: 200, want: []Access{{"repository", "docker-hub/library/nginx", []string{"pull"}}}},
		{name: "anonymous on private gets nothing", scopes: []string{"repository:private/app:pull"}, status: 200, want: []Access{}},
		{name: "good credentials, group grants pull and push", auth: basic("alice", "wonderland"),
			scopes: []string{"repository:private/app:pull,push"}, status: 200, wantSub: "alice",
			want: []Access{{"repository", "private/app", []string{"pull", "push"}}}},
		{name: "good credentials, trimmed to pull", auth: basic("bob", "builder"),
			scopes: []string{"repository:private/app:pull,push,delete"}, status: 200, wantSub: "bob",
			want: []Access{{"repository", "private/app", []string{"pull"}}}},
		{name: "several scope params and catalog", auth: basic("alice", "wonderland"),
			scopes: []string{"repository:private/app:push", "repository:private/secret:pull,push", "registry:catalog:*"},
			status: 200, wantSub: "alice",
			want: []Access{{"repository", "private/app", []string{"push"}}, {"repository", "private/secret", []string{"pull"}},
				{"registry", "catalog", []string{"*"}}}},
		{name: "docker login without scope", auth: basic("bob", "builder"), status: 200, wantSub: "bob", want: []Access{}},
		{name: "wrong password", auth: basic("alice", "builder"), scopes: []string{"repository:private/app:pull"},
			status: 401, wantCode: "UNAUTHORIZED"},
		{name: "unknown user", auth: basic("mallory", "x"), status: 401, wantCode: "UNAUTHORIZED"},
		{name: "empty user", auth: basic("", "x"), status: 401, wantCode: "UNAUTHORIZED"},
		{name: "not basic", auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, status: 401, wantCode: "UNAUTHORIZED"},
		{name: "bad scope", scopes: []string{"repository:private/app"}, status: 400, wantCode: "UNSUPPORTED"},
		{name: "POST", method: http.MethodPost, status: 405, wantCode: "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, r := getToken(t, srv, cmpOr(tt.method, http.MethodGet), tt.auth, tt.scopes...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%+v)", resp.StatusCode, tt.status, r)
			}
			if tt.status != 200 {
				if len(r.Errors) != 1 || r.Errors[0].Code != tt.wantCode {
					t.Fatalf("errors = %+v, want code %s", r.Errors, tt.wantCode)
				}
				if tt.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="berth"` {
					t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
				}
				return
			}
			if r.Token == "" || r.AccessToken != r.Token || r.ExpiresIn != 43200 {
				t.Fatalf("reply = %+v", r)
			}
			issued, err := time.Parse(time.RFC3339, r.IssuedAt)
			if err != nil || time.Since(issued) > time.Minute {
				t.Errorf("issued_at = %q (%v)", r.IssuedAt, err)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			c, err := is.Verify(r.Token)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != tt.wantSub {
				t.Errorf("sub = %q, want %q", c.Subject, tt.wantSub)
			}
			if g, w := mustJSON(t, c.Access), mustJSON(t, tt.want); g != w {
				t.Errorf("access = %s, want %s", g, w)
			}
		})
	}
	t.Run("unknown service", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL + "/token?service=other")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status = %d, want 400", resp.StatusCode)
		}
	})
}

// fixedAuthorizer grants fixed actions, or fails.
type fixedAuthorizer struct {
	actions []string
	err     error
}

func (f fixedAuthorizer) Grant(context.Context, Principal, netip.Addr, Access, bool) ([]string, error) {
	return f.actions, f.err
}

func TestTokenHandlerAuthorizer(t *testing.T) {
	tests := []struct {
		name   string
		authz  fixedAuthorizer
		scope  string
		status int
		want   []Access
	}{
		{name: "never more than requested", authz: fixedAuthorizer{actions: []string{"pull", "push", "delete"}},
			scope: "repository:a:pull", status: 200, want: []Access{{"repository", "a", []string{"pull"}}}},
		{name: "star takes what is granted", authz: fixedAuthorizer{actions: []string{"pull", "delete"}},
			scope: "repository:a:*", status: 200, want: []Access{{"repository", "a", []string{"pull", "delete"}}}},
		{name: "authorizer failure", authz: fixedAuthorizer{err: errors.New("policy store down")},
			scope: "repository:a:pull", status: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, is := tokenServer(t, tt.authz)
			resp, r := getToken(t, srv, http.MethodGet, basic("alice", "wonderland"), tt.scope)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			c, err := is.Verify(r.Token)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := mustJSON(t, c.Access), mustJSON(t, tt.want); g != w {
				t.Errorf("access = %s, want %s", g, w)
			}
		})
	}
}

func TestNewTokenHandlerRefuses(t *testing.T) {
	if _, err := NewTokenHandler(TokenHandlerConfig{}, nil); err == nil {
		t.Fatal("NewTokenHandler without issuer and authorizer succeeded")
	}
}
