package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"berth/internal/testclock"
	"berth/registry"

	"go.uber.org/zap/zaptest"
)

// TestRequireAdmin: the admin API takes an admin group member's password
// or login token; others get 401 with a Basic challenge, or 403.
func TestRequireAdmin(t *testing.T) {
	dir := t.TempDir()
	users, err := NewReloadable(UsersSource{
		HtpasswdPath: writeFile(t, dir, "htpasswd", bcryptLine(t, "root", "hunter2"), bcryptLine(t, "dev", "devpw")),
		Groups:       map[string][]string{"admins": {"root"}},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	issuer := newIssuer(t, testclock.New(), KeyConfig{Secret: secret(1)})
	rootToken := loginToken(t, issuer, users, "root")
	devToken := loginToken(t, issuer, users, "dev")
	h := RequireAdmin(TokenAuthenticator{Users: users, Issuer: issuer}, "admins",
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	tests := []struct {
		name       string
		user, pass string
		noAuth     bool
		wantStatus int
		wantCode   string
	}{
		{name: "no credentials", noAuth: true, wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "wrong password", user: "root", pass: "guess", wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "another user's token", user: "root", pass: devToken, wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "not in the group", user: "dev", pass: "devpw", wantStatus: http.StatusForbidden, wantCode: "DENIED"},
		{name: "admin password", user: "root", pass: "hunter2", wantStatus: http.StatusNoContent},
		{name: "admin token", user: "root", pass: rootToken, wantStatus: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/admin/", nil)
			if !tt.noAuth {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode == "" {
				return
			}
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != tt.wantCode {
				t.Errorf("body %s, want one %s error", rec.Body, tt.wantCode)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if (tt.wantStatus == http.StatusUnauthorized) != (challenge == `Basic realm="berth admin"`) {
				t.Errorf("WWW-Authenticate = %q on a %d", challenge, rec.Code)
			}
		})
	}
}

// loginToken issues the login token `berth get-login-password` gets for
// user, bound to user's entry in users.
func loginToken(t *testing.T, is *Issuer, users Authenticator, user string) string {
	t.Helper()
	b, ok := users.Binding(user)
	if !ok {
		t.Fatalf("no user %q", user)
	}
	tok, _, err := is.Sign(TokenSpec{Subject: user, Login: true, Binding: b})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestEnsureKey: the first start creates a key the issuer signs with; the
// next start keeps it.
func TestEnsureKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth", "token-key.pem")
	got, err := EnsureKey(path)
	if err != nil || got != path {
		t.Fatalf("EnsureKey = %q, %v", got, err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	newIssuer(t, testclock.New(), KeyConfig{PEMFile: path})
	if _, err := EnsureKey(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(first) {
		t.Error("a second start replaced the key")
	}
}

// Guessing an admin's password backs off like any other login: after
// registry.LoginFailureBurst failures from one address the admin API
// answers 429 without checking the password.
func TestRequireAdminGuessingBacksOff(t *testing.T) {
	users, err := NewReloadable(UsersSource{
		HtpasswdPath: writeFile(t, t.TempDir(), "htpasswd", bcryptLine(t, "root", "hunter2")),
		Groups:       map[string][]string{"admins": {"root"}},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	h := RequireAdmin(TokenAuthenticator{Users: users}, "admins",
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	counts := map[int]int{}
	for range 10 {
		req := httptest.NewRequest(http.MethodGet, "/admin/", nil)
		req.SetBasicAuth("root", "guess")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		counts[rec.Code]++
	}
	if counts[http.StatusUnauthorized] != registry.LoginFailureBurst || counts[http.StatusTooManyRequests] != 10-registry.LoginFailureBurst {
		t.Fatalf("statuses %v, want %d 401s then 429s", counts, registry.LoginFailureBurst)
	}
}
