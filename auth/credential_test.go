package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/testclock"
	"berth/registry"

	"go.uber.org/zap/zaptest"
)

// cfFixture is a token endpoint and a guard over one reloadable htpasswd
// file, with alice (group dev: push to private/app) and bob.
type cfFixture struct {
	srv      *httptest.Server
	is       *Issuer
	clk      *testclock.Clock
	users    *Reloadable
	guard    *Guard
	htpasswd string
}

func cfStart(t *testing.T) *cfFixture {
	t.Helper()
	log := zaptest.NewLogger(t)
	f := &cfFixture{clk: testclock.New()}
	f.htpasswd = writeFile(t, t.TempDir(), "htpasswd", bcryptLine(t, "alice", "wonderland"), bcryptLine(t, "bob", "builder"))
	users, err := NewReloadable(UsersSource{HtpasswdPath: f.htpasswd, Groups: map[string][]string{"dev": {"alice"}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	f.users = users
	f.is = newIssuer(t, f.clk, KeyConfig{PEM: ed25519PEM(t)})
	ev, err := NewEvaluator(testPolicies(t), log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewTokenHandler(TokenHandlerConfig{Issuer: f.is, Authorizer: ev, Resolver: testResolver{},
		Users: TokenAuthenticator{Users: users, Issuer: f.is}}, log)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.guard = &Guard{Users: users, Issuer: f.is, Evaluator: ev, Log: log}
	return f
}

// token asks the endpoint for a token with Basic user:pass (a login token
// when login is set) and returns the status, the token and the error
// message.
func (f *cfFixture) token(t *testing.T, user, pass string, login bool, scopes ...string) (int, string, string) {
	t.Helper()
	q := url.Values{"service": {"berth"}, "scope": scopes}
	if login {
		q.Set("login", "true")
	}
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r tokenReply
	_ = json.Unmarshal(body, &r)
	msg := ""
	if len(r.Errors) > 0 {
		msg = r.Errors[0].Message
	}
	return resp.StatusCode, r.Token, msg
}

// mustToken is token that must succeed.
func (f *cfFixture) mustToken(t *testing.T, user, pass string, login bool, scopes ...string) string {
	t.Helper()
	st, tok, msg := f.token(t, user, pass, login, scopes...)
	if st != http.StatusOK {
		t.Fatalf("token for %s: %d %s", user, st, msg)
	}
	return tok
}

// pushStatus is the guard's answer to a push to private/app with the
// Authorization header auth: 200 when allowed, else the error's status.
func (f *cfFixture) pushStatus(t *testing.T, auth string) int {
	t.Helper()
	r := httptest.NewRequest(http.MethodPut, "/v2/private/app/manifests/v1", nil)
	r.Header.Set("Authorization", auth)
	repo := registry.Repo{Name: "private/app", Target: registry.Target{Name: "private/app"}}
	_, err := f.guard.Check(r, registry.AccessRequest{Route: registry.Route{Kind: registry.KindManifest, Repo: repo}, Action: ActionPush})
	var re *registry.Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &re):
		return re.Status
	}
	t.Fatalf("Check: %v", err)
	return 0
}

func basicHeader(user, pass string) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// A password change or the user's removal ends every token the user
// holds: bearer tokens, and login tokens used as a password at the token
// endpoint and the registry (even one the guard just remembered).
func TestTokenEndsWithItsCredential(t *testing.T) {
	tests := map[string][]string{
		"password changed": {"alice:new-password", "bob:builder"},
		"user removed":     {"bob:builder"},
	}
	for name, after := range tests {
		t.Run(name, func(t *testing.T) {
			f := cfStart(t)
			login := f.mustToken(t, "alice", "wonderland", true)
			bearer := f.mustToken(t, "alice", "wonderland", false, "repository:private/app:push")
			if st, _, msg := f.token(t, "alice", login, false, "repository:private/app:push"); st != http.StatusOK {
				t.Fatalf("login token as password before the change: %d %s", st, msg)
			}
			if st := f.pushStatus(t, "Bearer "+bearer); st != http.StatusOK {
				t.Fatalf("bearer push before the change: %d", st)
			}
			if st := f.pushStatus(t, basicHeader("alice", login)); st != http.StatusOK {
				t.Fatalf("push with the login token before the change: %d", st)
			}

			var lines []string
			for _, up := range after {
				u, p, _ := strings.Cut(up, ":")
				lines = append(lines, bcryptLine(t, u, p))
			}
			if err := os.WriteFile(f.htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := f.users.Reload(); err != nil {
				t.Fatal(err)
			}

			if st, _, msg := f.token(t, "alice", login, true); st != http.StatusUnauthorized || !strings.Contains(msg, "since it was issued") {
				t.Errorf("renewing with the login token after the change: %d %q, want 401 naming the revocation", st, msg)
			}
			if st := f.pushStatus(t, "Bearer "+bearer); st != http.StatusUnauthorized {
				t.Errorf("bearer push after the change: %d, want 401", st)
			}
			if st := f.pushStatus(t, basicHeader("alice", login)); st != http.StatusUnauthorized {
				t.Errorf("push with the login token after the change: %d, want 401", st)
			}
			if st := f.pushStatus(t, basicHeader("alice", "wonderland")); st != http.StatusUnauthorized {
				t.Errorf("push with the old password after the change: %d, want 401", st)
			}
		})
	}
}

// Only a login token stands in for a password: a pull-only token, a token
// without scopes from the token dance, or another user's login token gets
// nothing more than its own scope.
func TestOnlyLoginTokensArePasswords(t *testing.T) {
	f := cfStart(t)
	pullOnly := f.mustToken(t, "alice", "wonderland", false, "repository:private/app:pull")
	noScope := f.mustToken(t, "alice", "wonderland", false)
	bobLogin := f.mustToken(t, "bob", "builder", true)
	for name, pass := range map[string]string{"pull-only token": pullOnly, "token without scope": noScope} {
		st, _, msg := f.token(t, "alice", pass, false, "repository:private/app:push")
		if st != http.StatusUnauthorized || !strings.Contains(msg, "get-login-password") {
			t.Errorf("%s as a password at the token endpoint: %d %q, want 401 pointing at get-login-password", name, st, msg)
		}
		if st := f.pushStatus(t, basicHeader("alice", pass)); st != http.StatusUnauthorized {
			t.Errorf("%s as a password for a push: %d, want 401", name, st)
		}
		if st := f.pushStatus(t, "Bearer "+pass); st != http.StatusForbidden {
			t.Errorf("%s as a bearer token for a push: %d, want 403", name, st)
		}
	}
	if st, _, _ := f.token(t, "alice", bobLogin, false); st != http.StatusUnauthorized {
		t.Errorf("bob's login token as alice's password: %d, want 401", st)
	}
	login := f.mustToken(t, "alice", "wonderland", true)
	c, err := f.is.Verify(login)
	if err != nil || !c.Login || len(c.Access) != 0 {
		t.Fatalf("login token: %+v, %v; want a login token without access", c, err)
	}
	push := f.mustToken(t, "alice", login, false, "repository:private/app:push")
	if st := f.pushStatus(t, "Bearer "+push); st != http.StatusOK {
		t.Errorf("push with a token minted with the login token: %d", st)
	}
}

// A token minted with a login token expires no later than the login
// token, and an expired login token mints nothing.
func TestMintedTokenNeverOutlivesItsParent(t *testing.T) {
	f := cfStart(t)
	login := f.mustToken(t, "alice", "wonderland", true)
	lc, err := f.is.Verify(login)
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(DefaultTokenTTL - time.Hour)
	for _, asLogin := range []bool{false, true} {
		child := f.mustToken(t, "alice", login, asLogin, "repository:private/app:pull")
		cc, err := f.is.Verify(child)
		if err != nil {
			t.Fatal(err)
		}
		if cc.ExpiresAt.After(lc.ExpiresAt) {
			t.Errorf("token minted (login %v) with a login token expiring %s expires %s", asLogin, lc.ExpiresAt, cc.ExpiresAt)
		}
	}
	f.clk.Advance(2 * time.Hour)
	if st, _, _ := f.token(t, "alice", login, true); st != http.StatusUnauthorized {
		t.Errorf("an expired login token minted a token: %d, want 401", st)
	}
}

// One token request asks for at most MaxScopes scopes of MaxScopeBytes.
func TestScopeLimits(t *testing.T) {
	f := cfStart(t)
	scopes := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("repository:private/app%d:pull", i))
		}
		return s
	}
	if st, _, msg := f.token(t, "alice", "wonderland", false, scopes(MaxScopes)...); st != http.StatusOK {
		t.Errorf("%d scopes: %d %s", MaxScopes, st, msg)
	}
	if st, _, msg := f.token(t, "alice", "wonderland", false, scopes(MaxScopes+1)...); st != http.StatusBadRequest || !strings.Contains(msg, "at most 16") {
		t.Errorf("%d scopes: %d %q, want 400 naming the limit", MaxScopes+1, st, msg)
	}
	long := "repository:private/" + strings.Repeat("a", MaxScopeBytes) + ":pull"
	if st, _, msg := f.token(t, "alice", "wonderland", false, long); st != http.StatusBadRequest {
		t.Errorf("a %d-byte scope: %d %q, want 400", len(long), st, msg)
	}
}

// cfCounting counts the password checks of the users it wraps.
type cfCounting struct {
	Authenticator
	mu     sync.Mutex
	checks int
}

func (c *cfCounting) Authenticate(user, pass string) bool {
	c.mu.Lock()
	c.checks++
	c.mu.Unlock()
	return c.Authenticator.Authenticate(user, pass)
}

func (c *cfCounting) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks
}

// Guessing a password at the token endpoint backs off after
// registry.LoginFailureBurst failures per address and user, and a refused
// guess costs no bcrypt; the right password from another user still works.
func TestTokenEndpointGuessingBacksOff(t *testing.T) {
	f := cfStart(t)
	counting := &cfCounting{Authenticator: f.users}
	ev, err := NewEvaluator(testPolicies(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewTokenHandler(TokenHandlerConfig{Issuer: f.is, Authorizer: ev, Users: counting}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Config.Handler = h
	counts := map[int]int{}
	for range 20 {
		st, _, _ := f.token(t, "alice", "guess", false)
		counts[st]++
	}
	if counts[http.StatusUnauthorized] != registry.LoginFailureBurst || counts[http.StatusTooManyRequests] != 20-registry.LoginFailureBurst {
		t.Fatalf("statuses %v, want %d 401s then 429s", counts, registry.LoginFailureBurst)
	}
	if got := counting.count(); got != registry.LoginFailureBurst {
		t.Fatalf("%d password checks for 20 guesses, want %d", got, registry.LoginFailureBurst)
	}
	if st, _, msg := f.token(t, "bob", "builder", false); st != http.StatusOK {
		t.Errorf("bob from the same address: %d %s", st, msg)
	}
}
