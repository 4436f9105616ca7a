package upstream

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth/test/testreg"
)

// ctTokenServer puts reg behind Bearer token auth: every /v2/ request
// without the token is answered 401 with a challenge whose realm is /token
// on the same server, and /token hands out the token for the given Basic
// credentials only.
type ctTokenFront struct {
	*httptest.Server
	mu     sync.Mutex
	scopes []string // scope parameters of granted token requests
	denied int      // refused token requests
}

func ctTokenServer(t *testing.T, reg *testreg.Registry, user, pass string) *ctTokenFront {
	const token = "tok-1234"
	f := &ctTokenFront{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				f.mu.Lock()
				f.denied++
				f.mu.Unlock()
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
				return
			}
			if r.URL.Query().Get("service") != "test" {
				t.Errorf("token request for service %q", r.URL.Query().Get("service"))
			}
			f.mu.Lock()
			f.scopes = append(f.scopes, r.URL.Query()["scope"]...)
			f.mu.Unlock()
			json.NewEncoder(w).Encode(map[string]string{"token": token})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, f.URL))
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func ctWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ctDockerConfig(t *testing.T, auths map[string]map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	return ctWriteFile(t, "config.json", string(b))
}

func ctBasic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestTokenAuth(t *testing.T) {
	reg := testreg.Start(t)
	img := testreg.Image(t, 20, 5000)
	d := reg.Push(t, "team/app", "v1", img)
	raw, _ := img.RawManifest()
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	front := ctTokenServer(t, reg, "alice", "s3cret")
	host := strings.TrimPrefix(front.URL, "http://")

	tests := []struct {
		name       string
		rule       func(t *testing.T) Rule
		wantStatus int // 0: the pull works
	}{
		{name: "username and password file", rule: func(t *testing.T) Rule {
			return Rule{Username: "alice", PasswordFile: ctWriteFile(t, "pw", "s3cret\n")}
		}},
		{name: "password file with CRLF", rule: func(t *testing.T) Rule {
			return Rule{Username: "alice", PasswordFile: ctWriteFile(t, "pw", "s3cret\r\n")}
		}},
		{name: "docker config, base64 auth", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctDockerConfig(t, map[string]map[string]string{
				"other.example": {"auth": ctBasic("mallory", "x")},
				host:            {"auth": ctBasic("alice", "s3cret")},
			})}
		}},
		{name: "docker config, URL key", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctDockerConfig(t, map[string]map[string]string{
				"http://" + host: {"auth": ctBasic("alice", "s3cret")},
			})}
		}},
		{name: "docker config, username and password", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctDockerConfig(t, map[string]map[string]string{
				host: {"username": "alice", "password": "s3cret"},
			})}
		}},
		{name: "anonymous", rule: func(t *testing.T) Rule { return Rule{} }, wantStatus: http.StatusUnauthorized},
		{name: "wrong password", rule: func(t *testing.T) Rule {
			return Rule{Username: "alice", PasswordFile: ctWriteFile(t, "pw", "guess")}
		}, wantStatus: http.StatusUnauthorized},
		{name: "docker config, wrong password", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctDockerConfig(t, map[string]map[string]string{host: {"auth": ctBasic("alice", "guess")}})}
		}, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			front.mu.Lock()
			front.scopes, front.denied = nil, 0
			front.mu.Unlock()
			r := tt.rule(t)
			u := ctUpstream(t, front.URL, func(rr *Rule) {
				rr.Username, rr.PasswordFile, rr.DockerConfig = r.Username, r.PasswordFile, r.DockerConfig
			})
			desc, body, err := u.GetManifest(context.Background(), "team/app", "v1")
			if tt.wantStatus != 0 {
				var se *StatusError
				if !errors.As(err, &se) || se.Status != tt.wantStatus {
					t.Fatalf("err = %v (%T), want a StatusError %d", err, err, tt.wantStatus)
				}
				if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
					t.Errorf("%v is ErrNotFound or ErrUnavailable", err)
				}
				front.mu.Lock()
				defer front.mu.Unlock()
				if front.denied == 0 {
					t.Error("the token endpoint refused nothing")
				}
				return
			}
			if err != nil {
				t.Fatalf("GetManifest: %v", err)
			}
			if desc.Digest != d.String() || !bytes.Equal(body, raw) {
				t.Errorf("got %s, want %s", desc.Digest, d)
			}
			if _, err := u.HeadManifest(context.Background(), "team/app", "v1"); err != nil {
				t.Errorf("HeadManifest: %v", err)
			}
			rc, _, err := u.GetBlobRange(context.Background(), "team/app", ld.String(), 0, -1)
			if err != nil {
				t.Fatalf("GetBlobRange: %v", err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil || n != 5000 {
				t.Errorf("blob: %d bytes, %v", n, err)
			}
			tags, err := u.ListTags(context.Background(), "team/app")
			if err != nil || len(tags) != 1 || tags[0] != "v1" {
				t.Errorf("ListTags = %q, %v", tags, err)
			}
			front.mu.Lock()
			defer front.mu.Unlock()
			// One token for the repository, reused by every request.
			if len(front.scopes) != 1 || front.scopes[0] != "repository:team/app:pull" {
				t.Errorf("token scopes requested: %q", front.scopes)
			}
		})
	}
}

func TestLoadAuthErrors(t *testing.T) {
	tests := []struct {
		name string
		rule func(t *testing.T) Rule
		want string
	}{
		{name: "missing password file", rule: func(t *testing.T) Rule {
			return Rule{Username: "u", PasswordFile: filepath.Join(t.TempDir(), "none")}
		}, want: "read password file"},
		{name: "missing docker config", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: filepath.Join(t.TempDir(), "none")}
		}, want: "read docker config"},
		{name: "docker config not json", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctWriteFile(t, "config.json", "{")}
		}, want: "parse docker config"},
		{name: "docker config without the host", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctDockerConfig(t, map[string]map[string]string{"other.example": {"auth": ctBasic("a", "b")}})}
		}, want: "has no credentials for r.example"},
		{name: "docker config auth not base64", rule: func(t *testing.T) Rule {
			return Rule{DockerConfig: ctDockerConfig(t, map[string]map[string]string{"r.example": {"auth": "%%%"}})}
		}, want: "is not base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule(t)
			r.Name, r.Prefix, r.URL = "test", "t", "https://r.example"
			_, err := New(r, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// A Docker Hub rule finds the credentials docker login writes for Hub.
func TestDockerConfigHubKeys(t *testing.T) {
	for _, key := range []string{"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"} {
		t.Run(key, func(t *testing.T) {
			cfg := ctDockerConfig(t, map[string]map[string]string{key: {"auth": ctBasic("bob", "pw")}})
			a, err := dockerConfigAuth(cfg, "registry-1.docker.io", true)
			if err != nil {
				t.Fatalf("dockerConfigAuth: %v", err)
			}
			ac, err := a.Authorization()
			if err != nil || ac.Username != "bob" || ac.Password != "pw" {
				t.Fatalf("Authorization = %+v, %v", ac, err)
			}
		})
	}
}
