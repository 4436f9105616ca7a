// Package security is Berth's attack suite: each row is an attack on a
// running berth and the safe answer it must get. See docs/security.md.
package security

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/oci"
	"berth/test/testreg"
)

// target is a berth with auth on and the parties the attacks need: users
// alice, bob and carol; a default upstream (hub); an upstream (redir) that
// redirects every download to an internal service; one (realm) with
// credentials whose token realm is that internal service; one (liar) that
// answers every manifest with liarBody; and local repositories under
// private/.
type target struct {
	*node
	htpasswd string
	internal *recorder
	// hub is the default upstream; vault one Berth reaches with
	// credentials (see startVault).
	hub, vault *testreg.Registry
}

// recorder is an internal service that must never hear from Berth.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func startTarget(t *testing.T) *target {
	t.Helper()
	internal := &recorder{}
	internal.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internal.mu.Lock()
		internal.seen = append(internal.seen, r.Method+" "+r.URL.String()+" auth="+r.Header.Get("Authorization"))
		internal.mu.Unlock()
		fmt.Fprint(w, `{"token":"t","secret":"instance credentials"}`)
	}))
	t.Cleanup(internal.Close)
	iu, _ := url.Parse(internal.URL)

	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		http.Redirect(w, r, internal.URL+"/latest/meta-data/", http.StatusFound)
	}))
	t.Cleanup(redir.Close)
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://localhost:`+iu.Port()+`/token",service="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(realm.Close)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
		fmt.Fprint(w, liarBody)
	}))
	t.Cleanup(liar.Close)
	hub := testreg.Start(t)
	vault := startVault(t)

	users := writeFile(t, "htpasswd", htpasswd(t, "alice:alice-pw", "bob:bob-pw", "carol:carol-pw"))
	upPass := writeFile(t, "upstream-password", "upstream-secret\n")
	cfg := "upstreams:\n" +
		fmt.Sprintf("  - {name: hub, prefix: hub, registry: docker.io, url: %q, default: true}\n", hub.URL) +
		fmt.Sprintf("  - {name: redir, prefix: redir, url: %q}\n", redir.URL) +
		fmt.Sprintf("  - {name: realm, prefix: realm, url: %q, username: berth, passwordFile: %q}\n", realm.URL, upPass) +
		fmt.Sprintf("  - {name: liar, prefix: liar, url: %q}\n", liar.URL) +
		fmt.Sprintf("  - {name: vault, prefix: vault, url: %q, username: berth, passwordFile: %q}\n", vault.URL, upPass) +
		"local:\n  prefixes: [private]\n  autoCreate: true\n" +
		fmt.Sprintf("auth:\n  enabled: true\n  htpasswd: %q\n", users)
	return &target{node: startBerth(t, cfg), htpasswd: users, internal: internal, hub: hub, vault: vault}
}

// attack is one row of the suite.
type attack struct {
	name   string
	attack string // what the attacker does
	safe   string // the safe answer
	run    func(t *testing.T, tg *target)
}

// liarBody is what the liar upstream answers for every manifest.
const liarBody = `{"token":"t","secret":"instance credentials"}`

var attacks = []attack{
	{
		name:   "ssrf-redirect",
		attack: "an upstream redirects a manifest and a blob download to an internal service (another port on loopback)",
		safe:   "Berth refuses the redirect: the pull fails (502) and the internal service is never contacted",
		run: func(t *testing.T, tg *target) {
			for _, p := range []string{"/v2/redir/team/app/manifests/v1", "/v2/redir/team/app/blobs/sha256:" + strings.Repeat("a", 64)} {
				if st, body := tg.do(t, http.MethodGet, p, "", nil); st == http.StatusOK || st == 0 {
					t.Errorf("GET %s: %d %s, want a refusal", p, st, body)
				}
			}
			if got := tg.internal.requests(); len(got) != 0 {
				t.Errorf("the internal service was contacted: %q", got)
			}
		},
	},
	{
		name:   "ssrf-realm",
		attack: "an upstream with credentials names a token realm on an internal service (http://localhost:<port>/token)",
		safe:   "Berth neither contacts the realm nor sends it the upstream's credentials; the pull fails",
		run: func(t *testing.T, tg *target) {
			if st, body := tg.do(t, http.MethodGet, "/v2/realm/team/app/manifests/v1", "", nil); st == http.StatusOK || st == 0 {
				t.Errorf("pull through the realm upstream: %d %s, want a refusal", st, body)
			}
			if got := tg.internal.requests(); len(got) != 0 {
				t.Errorf("the realm was contacted: %q", got)
			}
		},
	},
	{
		name:   "upstream-not-a-manifest",
		attack: "an upstream answers a manifest request with another service's JSON under a manifest Content-Type",
		safe:   "502 naming the upstream and why; nothing is stored, so the body is not served by its digest either",
		run: func(t *testing.T, tg *target) {
			d := sha256.Sum256([]byte(liarBody))
			for _, ref := range []string{"v1", "sha256:" + hex.EncodeToString(d[:])} {
				st, body := tg.do(t, http.MethodGet, "/v2/liar/team/app/manifests/"+ref, "", nil)
				if st != http.StatusBadGateway || !strings.Contains(string(body), "upstream liar") ||
					strings.Contains(string(body), "instance credentials") {
					t.Errorf("GET manifest %s: %d %s; want 502 naming the upstream, without the body", ref, st, body)
				}
			}
		},
	},
	{
		name:   "token-renewal-after-password-change",
		attack: "carol's login token is used to mint new tokens and to push after her password was changed",
		safe:   "every token carol holds is refused (401) once the new htpasswd is loaded",
		run: func(t *testing.T, tg *target) {
			st, login := tg.token(t, "carol", "carol-pw", url.Values{"login": {"true"}})
			if st != http.StatusOK {
				t.Fatalf("login token: %d", st)
			}
			if st, _ := tg.token(t, "carol", login, url.Values{}); st != http.StatusOK {
				t.Fatalf("renewal before the change: %d", st)
			}
			if err := os.WriteFile(tg.htpasswd, []byte(htpasswd(t, "alice:alice-pw", "bob:bob-pw", "carol:new-pw")), 0o600); err != nil {
				t.Fatal(err)
			}
			tg.reload(t)
			eventually(t, 10*time.Second, "reload of the new password", func() bool {
				st, _ := tg.do(t, http.MethodGet, "/v2/", basic("carol", "new-pw"), nil)
				return st == http.StatusOK
			})
			if st, _ := tg.token(t, "carol", login, url.Values{"login": {"true"}}); st != http.StatusUnauthorized {
				t.Errorf("renewal with the old login token: %d, want 401", st)
			}
			if st, _ := tg.do(t, http.MethodGet, "/v2/", basic("carol", login), nil); st != http.StatusUnauthorized {
				t.Errorf("the old login token as a password: %d, want 401", st)
			}
		},
	},
	{
		name:   "token-scope-widening",
		attack: "a pull-only token, and a token without scopes, are used as alice's password to push and to mint a push token",
		safe:   "both are refused (401): only a login token stands in for a password",
		run: func(t *testing.T, tg *target) {
			_, pull := tg.token(t, "alice", "alice-pw", url.Values{"scope": {"repository:private/app:pull"}})
			_, none := tg.token(t, "alice", "alice-pw", url.Values{})
			for name, tok := range map[string]string{"pull-only": pull, "no scope": none} {
				if tok == "" {
					t.Fatalf("no %s token", name)
				}
				if st, _ := tg.do(t, http.MethodPost, "/v2/private/app/blobs/uploads/", basic("alice", tok), nil); st != http.StatusUnauthorized {
					t.Errorf("push with the %s token as a password: %d, want 401", name, st)
				}
				if st, _ := tg.token(t, "alice", tok, url.Values{"scope": {"repository:private/app:push"}}); st != http.StatusUnauthorized {
					t.Errorf("push token minted with the %s token: %d, want 401", name, st)
				}
			}
		},
	},
	{
		name:   "scope-flood",
		attack: "one anonymous token request asks for 1000 scopes, or one 100 KiB scope",
		safe:   "400: at most 16 scopes of 8 KiB in all per request; no oversized token is signed",
		run: func(t *testing.T, tg *target) {
			var many []string
			for i := range 1000 {
				many = append(many, fmt.Sprintf("repository:hub/library/x%d:pull", i))
			}
			if st, _ := tg.token(t, "", "", url.Values{"scope": many}); st != http.StatusBadRequest {
				t.Errorf("1000 scopes: %d, want 400", st)
			}
			long := "repository:hub/" + strings.Repeat("a", 100<<10) + ":pull"
			if st, _ := tg.token(t, "", "", url.Values{"scope": {long}}); st != http.StatusBadRequest {
				t.Errorf("a 100 KiB scope: %d, want 400", st)
			}
		},
	},
	{
		name:   "upload-session-flood",
		attack: "alice opens upload sessions without end (local.maxOpenUploads is 16 by default)",
		safe:   "the 17th is refused with 429 TOOMANYREQUESTS saying how many are open and what to do; bob is not held to alice's count, and a cancelled session frees a slot",
		run: func(t *testing.T, tg *target) {
			alice, bob := basic("alice", "alice-pw"), basic("bob", "bob-pw")
			const start = "/v2/private/flood/blobs/uploads/"
			var loc string
			for i := range 16 {
				st, hdr, body := tg.send(t, http.MethodPost, start, alice, nil)
				if st != http.StatusAccepted {
					t.Fatalf("alice's session %d: %d %s", i+1, st, body)
				}
				loc = hdr.Get("Location")
			}
			st, _, body := tg.send(t, http.MethodPost, start, alice, nil)
			if st != http.StatusTooManyRequests || !strings.Contains(string(body), "TOOMANYREQUESTS") ||
				!strings.Contains(string(body), "16 upload sessions") || !strings.Contains(string(body), "local.maxOpenUploads") {
				t.Errorf("alice's 17th session: %d %s; want 429 saying 16 are open", st, body)
			}
			if st, _, body := tg.send(t, http.MethodPost, start, bob, nil); st != http.StatusAccepted {
				t.Errorf("bob's session: %d %s", st, body)
			}
			if st, _, body := tg.send(t, http.MethodDelete, loc, alice, nil); st != http.StatusNoContent {
				t.Fatalf("cancel: %d %s", st, body)
			}
			if st, _, body := tg.send(t, http.MethodPost, start, alice, nil); st != http.StatusAccepted {
				t.Errorf("alice's session after a cancel: %d %s", st, body)
			}
		},
	},
	{
		name:   "password-guessing",
		attack: "20 guesses of bob's password from one address, at the registry and at the token endpoint",
		safe:   "after 5 failures the guesses get 429 before any password check",
		run: func(t *testing.T, tg *target) {
			for _, where := range []string{"registry", "token endpoint"} {
				counts := map[int]int{}
				for i := range 20 {
					var st int
					if where == "registry" {
						st, _ = tg.do(t, http.MethodGet, "/v2/", basic("bob", fmt.Sprintf("guess-%d", i)), nil)
					} else {
						st, _ = tg.token(t, "bob", fmt.Sprintf("guess-%d", i), url.Values{})
					}
					counts[st]++
				}
				if counts[http.StatusTooManyRequests] < 15 || counts[http.StatusOK] != 0 {
					t.Errorf("%s: statuses %v, want 429 after at most 5 failures", where, counts)
				}
			}
		},
	},
	{
		name:   "long-user-names",
		attack: "20 guesses from one address for a user name of 64 KiB, at the registry and at the token endpoint",
		safe:   "the name's failed logins back off like any other's (the bucket is named by the name's hash, not the 64 KiB)",
		run: func(t *testing.T, tg *target) {
			for _, where := range []string{"registry", "token endpoint"} {
				user := where + strings.Repeat("u", 64<<10)
				counts := map[int]int{}
				for i := range 20 {
					var st int
					if where == "registry" {
						st, _ = tg.do(t, http.MethodGet, "/v2/", basic(user, fmt.Sprintf("guess-%d", i)), nil)
					} else {
						st, _ = tg.token(t, user, fmt.Sprintf("guess-%d", i), url.Values{})
					}
					counts[st]++
				}
				if counts[http.StatusUnauthorized] != 5 || counts[http.StatusTooManyRequests] != 15 {
					t.Errorf("%s: statuses %v, want 5 401s then 429s", where, counts)
				}
			}
		},
	},
}

func TestAttacks(t *testing.T) {
	tg := startTarget(t)
	// The password-guessing row leaves the address rate limited: rows
	// that log in run first.
	for _, a := range append(slices.Clone(visibilityAttacks), attacks...) {
		t.Run(a.name, func(t *testing.T) {
			t.Logf("attack: %s; safe answer: %s", a.attack, a.safe)
			a.run(t, tg)
		})
	}
}
