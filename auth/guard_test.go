package auth

import (
	"errors"
	"net/http/httptest"
	"testing"

	"berth/registry"

	"go.uber.org/zap/zaptest"
)

// The guard decides a bearer request on the canonical names the registry
// resolved, never on the names as the client wrote them: a token holds
// the canonical repositories it was granted for.
func TestGuardChecksTokensAgainstCanonicalNames(t *testing.T) {
	log := zaptest.NewLogger(t)
	is, err := NewIssuer(IssuerConfig{Keys: []KeyConfig{{PEM: ed25519PEM(t)}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewEvaluator(EvaluatorConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	users, err := LoadUsers(UsersSource{HtpasswdPath: writeFile(t, t.TempDir(), "htpasswd", bcryptLine(t, "bob", "builder"))})
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{Users: users, Issuer: is, Evaluator: ev, Log: log}
	binding, _ := users.Binding("bob")
	// Granted through the default rule: hub/secret/app, and push on a
	// local repository.
	tok, _, err := is.Sign(TokenSpec{Subject: "bob", Binding: binding, Access: []Access{
		{Type: TypeRepository, Name: "hub/secret/app", Actions: []string{ActionPull}},
		{Type: TypeRepository, Name: "private/bob", Actions: []string{ActionPull, ActionPush}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hubApp := registry.Repo{Name: "secret/app", Target: registry.Target{Name: "hub/secret/app", Upstream: "hub", Remote: "secret/app"}}
	privApp := registry.Repo{Name: "secret/app", NS: "priv.example", Target: registry.Target{Name: "priv/secret/app", Upstream: "priv", Remote: "secret/app"}}
	bobRepo := registry.Repo{Name: "private/bob", Target: registry.Target{Name: "private/bob"}}
	tests := []struct {
		name    string
		req     registry.AccessRequest
		wantErr error // nil: allowed
		status  int   // of the *registry.Error otherwise
	}{
		{name: "pull of the granted repository", req: registry.AccessRequest{Route: registry.Route{Kind: registry.KindManifest, Repo: hubApp}, Action: ActionPull}},
		{name: "same name, other upstream", req: registry.AccessRequest{Route: registry.Route{Kind: registry.KindManifest, Repo: privApp}, Action: ActionPull}, status: 403},
		{name: "mount from the granted repository", req: registry.AccessRequest{Route: registry.Route{Kind: registry.KindBlobUpload, Repo: bobRepo}, Action: ActionPush, MountFrom: hubApp}},
		{name: "mount from the same name on another upstream", req: registry.AccessRequest{Route: registry.Route{Kind: registry.KindBlobUpload, Repo: bobRepo}, Action: ActionPush, MountFrom: privApp}, wantErr: registry.ErrNoMount},
		{name: "mount from a source nothing serves", req: registry.AccessRequest{Route: registry.Route{Kind: registry.KindBlobUpload, Repo: bobRepo}, Action: ActionPush, MountFrom: registry.Repo{Name: "secret/app", NS: "nowhere.example"}}, wantErr: registry.ErrNoMount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v2/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			_, err := g.Check(r, tt.req)
			var re *registry.Error
			switch {
			case tt.status != 0:
				if !errors.As(err, &re) || re.Status != tt.status {
					t.Fatalf("Check = %v, want status %d", err, tt.status)
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("Check = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
