package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/test/testreg"

	"go.uber.org/zap/zaptest/observer"
)

// ptFront puts reg behind Basic auth for a set of users, records which user
// made each request and can make a user's requests answer 429 or report
// the quota spent.
type ptFront struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string          // "user METHOD repo", of authenticated requests
	mode map[string]string // by user: "429" or "spent"
}

func ptServer(t *testing.T, reg *testreg.Registry, users map[string]string) *ptFront {
	f := &ptFront{mode: map[string]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || users[user] == "" || users[user] != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, user+" "+r.Method+" "+ptRepo(r.URL.Path))
		mode := f.mode[user]
		f.mu.Unlock()
		switch mode {
		case "429":
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		case "spent":
			w.Header().Set("RateLimit-Limit", "100;w=21600")
			w.Header().Set("RateLimit-Remaining", "0;w=60")
		}
		reg.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// ptRepo is the repository a /v2/ path addresses.
func ptRepo(path string) string {
	p := strings.TrimPrefix(path, "/v2/")
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.Index(p, sep); i >= 0 {
			return p[:i]
		}
	}
	return p
}

func (f *ptFront) set(user, mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode[user] = mode
}

// take returns and forgets the requests seen.
func (f *ptFront) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seen
	f.seen = nil
	return s
}

// ptPool returns a registry with team/a..team/d behind a front for alice
// and bob, and a client with both in its credential pool.
func ptPool(t *testing.T) (*ptFront, *Upstream, *observer.ObservedLogs) {
	t.Helper()
	reg := testreg.Start(t)
	img := testreg.Image(t, 40, 100)
	for _, r := range []string{"team/a", "team/b", "team/c", "team/d"} {
		reg.Push(t, r, "v1", img)
	}
	front := ptServer(t, reg, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	u, logs := qtUpstream(t, front.URL, func(r *Rule) {
		r.Credentials = []Credential{
			{Username: "alice", PasswordFile: ctWriteFile(t, "alice", "pw-a\n")},
			{Username: "bob", PasswordFile: ctWriteFile(t, "bob", "pw-b")},
		}
	})
	return front, u, logs
}

func ptHead(u *Upstream, repo string) error {
	_, err := u.HeadManifest(context.Background(), repo, "v1")
	return err
}

func ptGet(u *Upstream, repo string) error {
	_, _, err := u.GetManifest(context.Background(), repo, "v1")
	return err
}

// Repositories take the credentials in turn and keep theirs.
func TestPoolRoundRobin(t *testing.T) {
	front, u, _ := ptPool(t)
	for _, repo := range []string{"team/a", "team/b", "team/c", "team/d", "team/a", "team/b"} {
		if err := ptHead(u, repo); err != nil {
			t.Fatalf("HeadManifest(%s): %v", repo, err)
		}
	}
	if err := ptGet(u, "team/c"); err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	want := []string{
		"alice HEAD team/a", "bob HEAD team/b", "alice HEAD team/c", "bob HEAD team/d",
		"alice HEAD team/a", "bob HEAD team/b", "alice GET team/c",
	}
	if got := front.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("the upstream saw\n%q\nwant\n%q", got, want)
	}
}

// A credential told to slow down backs off alone: its repositories move
// to the other credential, and the upstream does not back off.
func TestPoolOneCredentialBacksOff(t *testing.T) {
	tests := []struct {
		name string
		mode string
		// wantAliceHead: a HEAD of alice's repository still goes with alice.
		wantAliceHead bool
	}{
		{name: "429", mode: "429"},
		{name: "quota spent", mode: "spent", wantAliceHead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			front, u, logs := ptPool(t)
			if err := ptHead(u, "team/a"); err != nil { // alice
				t.Fatal(err)
			}
			if err := ptHead(u, "team/b"); err != nil { // bob
				t.Fatal(err)
			}
			front.set("alice", tt.mode)
			err := ptGet(u, "team/a")
			if tt.mode == "429" && (!errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBackoff)) {
				t.Fatalf("GetManifest: %v, want the 429", err)
			}
			if tt.mode == "spent" && err != nil {
				t.Fatalf("GetManifest with the last of alice's quota: %v", err)
			}
			front.take()

			if err := ptHead(u, "team/a"); err != nil {
				t.Errorf("HeadManifest(team/a): %v", err)
			}
			for _, repo := range []string{"team/a", "team/c", "team/d"} {
				if err := ptGet(u, repo); err != nil {
					t.Errorf("GetManifest(%s): %v", repo, err)
				}
			}
			want := []string{"bob HEAD team/a", "bob GET team/a", "bob GET team/c", "bob GET team/d"}
			if tt.wantAliceHead {
				want[0] = "alice HEAD team/a"
			}
			if got := front.take(); !reflect.DeepEqual(got, want) {
				t.Errorf("the upstream saw\n%q\nwant\n%q", got, want)
			}
			if until, ok := u.Backoff(); ok {
				t.Errorf("the upstream backs off until %s with bob free", until)
			}
			if c, up := qtWarnings(logs, qtCredWarn), qtWarnings(logs, qtUpstreamWarn); c != 1 || up != 0 {
				t.Errorf("%d credential and %d upstream backoff warnings, want 1 and 0", c, up)
			}
			if u.Throttled() != 0 {
				t.Errorf("Throttled = %d, want 0", u.Throttled())
			}
		})
	}
}

// When every credential backs off, the upstream does: requests fail at once
// without contacting it.
func TestPoolAllCredentialsBackOff(t *testing.T) {
	front, u, logs := ptPool(t)
	front.set("alice", "429")
	front.set("bob", "429")
	start := time.Now()
	for i, repo := range []string{"team/a", "team/a"} { // alice, then bob
		if err := ptHead(u, repo); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBackoff) {
			t.Fatalf("request %d: %v, want the 429", i, err)
		}
		if i == 0 {
			if _, ok := u.Backoff(); ok {
				t.Fatal("the upstream backs off with bob free")
			}
		}
	}
	if got, want := front.take(), []string{"alice HEAD team/a", "bob HEAD team/a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the upstream saw %q, want %q", got, want)
	}
	until, ok := u.Backoff()
	if !ok || until.Before(start.Add(29*time.Second)) || until.After(time.Now().Add(30*time.Second)) {
		t.Fatalf("Backoff() = %s, %v; want 30 s", time.Until(until), ok)
	}
	for _, repo := range []string{"team/a", "team/b", "team/c"} {
		err := ptGet(u, repo)
		var be *BackoffError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &be) || !be.Until.Equal(until) {
			t.Errorf("GetManifest(%s): %v, want a BackoffError until %s", repo, err, until)
		}
	}
	if got := front.take(); len(got) != 0 {
		t.Errorf("the upstream saw %q while backing off", got)
	}
	if u.Throttled() != 3 {
		t.Errorf("Throttled = %d, want 3", u.Throttled())
	}
	// alice's, then the upstream's when bob's started.
	if c, up := qtWarnings(logs, qtCredWarn), qtWarnings(logs, qtUpstreamWarn); c != 1 || up != 1 {
		t.Errorf("%d credential and %d upstream backoff warnings, want 1 and 1", c, up)
	}
}

// pick, usable and backoff at chosen times.
func TestPoolPick(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Minute)
	type state struct{ hard, quota time.Time }
	tests := []struct {
		name        string
		creds       []state
		method      string
		wantPicks   []int // indexes of three picks in a row, -1: nil
		wantBackoff bool
		wantUntil   time.Time
	}{
		{name: "all free, round-robin", creds: []state{{}, {}, {}}, method: http.MethodGet, wantPicks: []int{0, 1, 2}},
		{name: "one credential", creds: []state{{}}, method: http.MethodGet, wantPicks: []int{0, 0, 0}},
		{name: "expired backoffs are free", creds: []state{{hard: now.Add(-time.Second)}, {quota: now}}, method: http.MethodGet, wantPicks: []int{0, 1, 0}},
		{name: "skips a 429'd credential", creds: []state{{}, {hard: later}, {}}, method: http.MethodGet, wantPicks: []int{0, 2, 0}},
		{name: "skips a spent quota for GET", creds: []state{{quota: later}, {}}, method: http.MethodGet, wantPicks: []int{1, 1, 1}},
		{name: "a spent quota is free for HEAD", creds: []state{{quota: later}, {}}, method: http.MethodHead, wantPicks: []int{0, 1, 0}},
		{name: "a 429 holds HEADs too", creds: []state{{hard: later}, {}}, method: http.MethodHead, wantPicks: []int{1, 1, 1}},
		{name: "all back off", creds: []state{{hard: later.Add(time.Minute)}, {quota: later}}, method: http.MethodGet,
			wantPicks: []int{-1, -1, -1}, wantBackoff: true, wantUntil: later},
		{name: "all back off, the later of both for one", creds: []state{{hard: later, quota: later.Add(time.Hour)}}, method: http.MethodGet,
			wantPicks: []int{-1, -1, -1}, wantBackoff: true, wantUntil: later.Add(time.Hour)},
		{name: "quotas spent, HEADs go on", creds: []state{{quota: later}, {quota: later}}, method: http.MethodHead, wantPicks: []int{0, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var creds []*credential
			for _, s := range tt.creds {
				creds = append(creds, &credential{hard: s.hard, quota: s.quota})
			}
			p := newPool(creds)
			until, off := p.backoff(tt.method, now)
			if off != tt.wantBackoff || !until.Equal(tt.wantUntil) {
				t.Errorf("backoff = %s, %v; want %s, %v", until, off, tt.wantUntil, tt.wantBackoff)
			}
			for i, want := range tt.wantPicks {
				c := p.pick(tt.method, now)
				got := slicesIndex(creds, c)
				if got != want {
					t.Errorf("pick %d = %d, want %d", i, got, want)
				}
				if c != nil && !p.usable(c, tt.method, now) {
					t.Errorf("picked credential %d is not usable", got)
				}
			}
		})
	}
}

func slicesIndex(creds []*credential, c *credential) int {
	for i, x := range creds {
		if x == c {
			return i
		}
	}
	return -1
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	pw := ctWriteFile(t, "pw", "secret\r\n")
	tests := []struct {
		name      string
		rule      Rule
		wantUsers []string
		wantErr   string
	}{
		{name: "anonymous", rule: Rule{}, wantUsers: []string{""}},
		{name: "single", rule: Rule{Username: "u", PasswordFile: pw}, wantUsers: []string{"u"}},
		{name: "pool", rule: Rule{Credentials: []Credential{{Username: "a", PasswordFile: pw}, {Username: "b", PasswordFile: pw}}},
			wantUsers: []string{"a", "b"}},
		{name: "pool with a missing password file", rule: Rule{Credentials: []Credential{
			{Username: "a", PasswordFile: pw}, {Username: "b", PasswordFile: filepath.Join(dir, "none")}}},
			wantErr: "credentials[1] (b): read password file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := loadCredentials(tt.rule, "r.example")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var users []string
			for _, c := range creds {
				users = append(users, c.user)
				ac, err := c.auth.Authorization()
				if err != nil || (c.user != "" && ac.Password != "secret") {
					t.Errorf("credential %q: %+v, %v", c.user, ac, err)
				}
			}
			if !reflect.DeepEqual(users, tt.wantUsers) {
				t.Errorf("users = %q, want %q", users, tt.wantUsers)
			}
		})
	}
}

// The pool works with the token dance too: each credential gets its own
// token for a repository.
func TestPoolBearer(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "team/app", "v1", testreg.Image(t, 41, 100))
	front := ctTokenServer(t, reg, "alice", "s3cret")
	u, _ := qtUpstream(t, front.URL, func(r *Rule) {
		r.Credentials = []Credential{{Username: "alice", PasswordFile: ctWriteFile(t, "pw", "s3cret")}}
	})
	if err := ptGet(u, "team/app"); err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	rc, _, err := u.GetBlobRange(context.Background(), "team/app", "sha256:0000000000000000000000000000000000000000000000000000000000000000", 0, -1)
	if rc != nil {
		io.Copy(io.Discard, rc)
		rc.Close()
	}
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("GetBlobRange of an unknown blob: %v, want ErrNotFound", err)
	}
	front.mu.Lock()
	defer front.mu.Unlock()
	if len(front.scopes) != 1 || front.denied != 0 {
		t.Errorf("scopes %q, %d denied; want one token", front.scopes, front.denied)
	}
}
