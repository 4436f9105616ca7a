package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"berth/test/testreg"
)

// fcRecorder is a server that records what reaches it: the method, path
// and Authorization header of every request.
type fcRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func fcStart(t *testing.T, h http.HandlerFunc) *fcRecorder {
	f := &fcRecorder{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fcRecorder) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// An upstream that redirects Berth to a host outside the rule's allowed
// hosts (here: another port of the same loopback address, which could be
// any internal service) is refused, and nothing is sent there.
func TestRedirectToHostNotAllowed(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 1, 100))
	internal := fcStart(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"secret":true}`)) })
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		http.Redirect(w, r, internal.URL+"/internal", http.StatusFound)
		return true
	})
	u := ctUpstream(t, reg.URL, nil)

	_, _, err := u.GetManifest(context.Background(), "team/app", "v1")
	if !errors.Is(err, ErrHostNotAllowed) {
		t.Fatalf("GetManifest after a redirect to %s: err = %v, want ErrHostNotAllowed", internal.URL, err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Errorf("a refused host is not an unavailable upstream: %v", err)
	}
	if !strings.Contains(err.Error(), "allowedHosts") {
		t.Errorf("error %q does not say how to allow the host", err)
	}
	if _, _, err := u.GetBlobRange(context.Background(), "team/app", "sha256:"+strings.Repeat("a", 64), 0, -1); !errors.Is(err, ErrHostNotAllowed) {
		t.Errorf("GetBlobRange after a redirect: err = %v, want ErrHostNotAllowed", err)
	}
	if got := internal.requests(); len(got) != 0 {
		t.Errorf("the internal service was contacted: %q", got)
	}
}

// fcRealmFront puts reg behind Bearer auth whose token realm is on the
// server realm, named by host name (localhost), which the client library's
// own check of IP literals does not catch.
func fcRealmFront(t *testing.T, reg *testreg.Registry, realm *fcRecorder) *httptest.Server {
	ru, err := url.Parse(realm.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://localhost:`+ru.Port()+`/token",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.Serve(w, r)
	}))
	t.Cleanup(front.Close)
	return front
}

// A token realm on another host gets neither the rule's credentials nor
// any request, unless the operator allows the host.
func TestRealmOnHostNotAllowed(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 2, 100))
	realm := fcStart(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"token": "tok"})
	})
	front := fcRealmFront(t, reg, realm)
	pw := ctWriteFile(t, "pw", "s3cret\n")
	withCreds := func(r *Rule) { r.Username, r.PasswordFile = "alice", pw }

	for name, edit := range map[string]func(*Rule){"with credentials": withCreds, "anonymous": nil} {
		u := ctUpstream(t, front.URL, edit)
		_, err := u.HeadManifest(context.Background(), "team/app", "v1")
		if !errors.Is(err, ErrHostNotAllowed) {
			t.Fatalf("%s: HeadManifest with a realm on localhost: err = %v, want ErrHostNotAllowed", name, err)
		}
		if !strings.Contains(err.Error(), "token realm http://localhost:") {
			t.Errorf("%s: error %q does not name the realm", name, err)
		}
	}
	if got := realm.requests(); len(got) != 0 {
		t.Fatalf("the realm was contacted: %q", got)
	}

	_, port, _ := strings.Cut(strings.TrimPrefix(realm.URL, "http://"), ":")
	u := ctUpstream(t, front.URL, func(r *Rule) { withCreds(r); r.AllowedHosts = []string{"localhost:" + port} })
	if _, err := u.HeadManifest(context.Background(), "team/app", "v1"); err != nil {
		t.Fatalf("HeadManifest with the realm in allowedHosts: %v", err)
	}
	if got := realm.requests(); len(got) != 1 || got[0] != "GET /token auth=Basic "+ctBasic("alice", "s3cret") {
		t.Errorf("the allowed realm saw %q, want one token request with alice's credentials", got)
	}
}

// The fence's rules for one request, against a real server behind it.
func TestFenceCredentials(t *testing.T) {
	srv := fcStart(t, func(w http.ResponseWriter, r *http.Request) {})
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name    string
		ruleURL string
		allowed []string
		auth    bool
		refused bool
	}{
		{name: "own host, http rule, credentials", ruleURL: srv.URL, auth: true},
		{name: "other host, anonymous", ruleURL: "http://127.0.0.1:1", refused: true},
		{name: "allowed host, credentials", ruleURL: "http://127.0.0.1:1", allowed: []string{host}, auth: true},
		{name: "allowed host without port, credentials", ruleURL: "http://127.0.0.1:1", allowed: []string{"127.0.0.1"}, auth: true},
		{name: "credentials over http for an https rule", ruleURL: "https://" + host, allowed: []string{host}, auth: true, refused: true},
		{name: "no credentials over http for an https rule", ruleURL: "https://" + host, allowed: []string{host}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.ruleURL)
			if err != nil {
				t.Fatal(err)
			}
			f := newFence(Rule{Name: "test", URL: tt.ruleURL, AllowedHosts: tt.allowed}, u, http.DefaultTransport)
			req := httptest.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
			req.RequestURI = ""
			if tt.auth {
				req.SetBasicAuth("alice", "s3cret")
			}
			resp, err := f.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if tt.refused != errors.Is(err, ErrHostNotAllowed) {
				t.Fatalf("RoundTrip: err = %v, want refused %v", err, tt.refused)
			}
		})
	}
}

// The well-known registries' hosts: a rule may be sent to any of them, but
// its credentials go only to its own registry's token hosts.
func TestFenceWellKnown(t *testing.T) {
	tests := []struct {
		ruleURL, host string
		reach, creds  bool
	}{
		{"https://registry-1.docker.io", "auth.docker.io:443", true, true},
		{"https://registry-1.docker.io", "production.cloudflare.docker.com:443", true, false},
		{"https://registry-1.docker.io", "docker-images-prod.abc.r2.cloudflarestorage.com:443", true, false},
		{"https://ghcr.io", "auth.docker.io:443", true, false},
		{"https://ghcr.io", "pkg-containers.githubusercontent.com:443", true, false},
		{"https://us-docker.pkg.dev", "us-docker.pkg.dev:443", true, true},
		{"https://quay.io", "cdn01.quay.io:443", true, false},
		{"https://quay.io", "metadata.google.internal:80", false, false},
		{"https://registry.example", "auth.docker.io:443", true, false},
		{"https://registry.example", "auth.registry.example:443", false, false},
		{"https://registry.example", "registry.example:8443", false, false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.ruleURL)
		if err != nil {
			t.Fatal(err)
		}
		f := newFence(Rule{Name: "t", URL: tt.ruleURL}, u, nil)
		if got := f.reach.allows(tt.host); got != tt.reach {
			t.Errorf("rule %s: may reach %s = %v, want %v", tt.ruleURL, tt.host, got, tt.reach)
		}
		if got := f.creds.allows(tt.host); got != tt.creds {
			t.Errorf("rule %s: credentials to %s = %v, want %v", tt.ruleURL, tt.host, got, tt.creds)
		}
	}
}

func TestHostSet(t *testing.T) {
	s := hostSet{"cdn.example", "auth.example:8443", "*.blobs.example", "[fd00::5]"}
	tests := map[string]bool{
		"cdn.example:443":       true,
		"CDN.example:80":        true,
		"auth.example:8443":     true,
		"auth.example:443":      false,
		"a.blobs.example:443":   true,
		"a.b.blobs.example:443": true,
		"blobs.example:443":     false,
		"evilblobs.example:443": false,
		"[fd00::5]:443":         true,
		"cdn.example.evil:443":  false,
	}
	for host, want := range tests {
		if got := s.allows(host); got != want {
			t.Errorf("allows(%q) = %v, want %v", host, got, want)
		}
	}
}

// Berth never connects to link-local or metadata addresses, checked on the
// resolved address so that a host name pointing there is refused too;
// loopback and private addresses stay reachable.
func TestDialControl(t *testing.T) {
	tests := map[string]bool{
		"169.254.169.254:80":          true,
		"169.254.0.1:443":             true,
		"[fe80::1%lo]:80":             true,
		"[fd00:ec2::254]:80":          true,
		"[::ffff:169.254.169.254]:80": true,
		"100.100.100.200:80":          true,
		"127.0.0.1:5000":              false,
		"10.0.0.5:443":                false,
		"[::1]:5000":                  false,
		"192.168.1.10:443":            false,
	}
	for addr, blocked := range tests {
		err := dialControl("tcp", addr, nil)
		if errors.Is(err, ErrBlockedAddress) != blocked {
			t.Errorf("dialControl(%s) = %v, want blocked %v", addr, err, blocked)
		}
	}

	// The network transport itself, without the fence: the dialer refuses.
	req, err := http.NewRequest(http.MethodGet, "http://169.254.169.254/latest/meta-data/", nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := DefaultTransport(Rule{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := base.RoundTrip(req); !errors.Is(err, ErrBlockedAddress) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("DefaultTransport to 169.254.169.254: err = %v, want ErrBlockedAddress", err)
	}

	u := ctUpstream(t, "http://169.254.169.254", nil)
	if _, err := u.HeadManifest(context.Background(), "team/app", "v1"); !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("HeadManifest from 169.254.169.254: err = %v, want ErrBlockedAddress", err)
	}
}
