package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/crypto/bcrypt"

	"berth/test/clients"
	"berth/test/testreg"
)

// auUsers are the test users and their passwords.
var auUsers = map[string]string{"alice": "alice-secret-pw", "bob": "bob-secret-pw"}

// auHtpasswd writes a bcrypt htpasswd file for users.
func auHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, b.String())
	return path
}

// auConfig is a Berth config: a default upstream rule to upURL, local
// repositories under private/, auth on with the htpasswd file, and extra
// appended to the auth section.
func auConfig(upURL, htpasswd, authExtra string) string {
	return pushLocalConfig(upURL) +
		fmt.Sprintf("auth:\n  enabled: true\n  htpasswd: %q\n", htpasswd) + authExtra
}

// auStartBerth starts berth like StartBerth, but with auth on GET /v2/
// answers 401 to anonymous clients (StartBerth waits for a 200), so it is
// ready when /v2/ answers 401 with a Bearer challenge.
func auStartBerth(t *testing.T, configBody string) *Berth {
	t.Helper()
	return StartBerth(t, "", configBody)
}

// auClient is an HTTP client whose connections leave from localIP ("" for
// the default source address).
func auClient(localIP string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

func auBasic(user string) cred { return cred{user: user, pass: auUsers[user]} }

// auPushImage pushes img's blobs (monolithic POST ?digest=) and manifest
// as repo:tag with cred, over c, and returns the manifest digest.
func auPushImage(ctx context.Context, t *testing.T, c *http.Client, b *Berth, cred cred, repo, tag string, img v1.Image) string {
	t.Helper()
	var blobs [][]byte
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	blobs = append(blobs, cfg)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, data)
	}
	for _, data := range blobs {
		st, _, body := request(ctx, t, c, http.MethodPost, b.URL+"/v2/"+repo+"/blobs/uploads/?digest="+pushSha256(data), cred,
			http.Header{"Content-Type": {"application/octet-stream"}}, data)
		if st != http.StatusCreated {
			t.Fatalf("push blob to %s as %q: %d %s", repo, cred.user, st, body)
		}
	}
	mf, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	st, _, body := request(ctx, t, c, http.MethodPut, b.URL+"/v2/"+repo+"/manifests/"+tag, cred,
		http.Header{"Content-Type": {string(mt)}}, mf)
	if st != http.StatusCreated {
		t.Fatalf("push manifest %s:%s as %q: %d %s", repo, tag, cred.user, st, body)
	}
	return pushSha256(mf)
}

// auToken asks berth's /token endpoint for a token with scopes, as cred.
func auToken(ctx context.Context, t *testing.T, c *http.Client, b *Berth, cred cred, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {"berth"}, "scope": scopes}
	st, _, body := request(ctx, t, c, http.MethodGet, b.URL+"/token?"+q.Encode(), cred, nil, nil)
	if st != http.StatusOK {
		t.Fatalf("token %v as %q: %d %s", scopes, cred.user, st, body)
	}
	var tr struct{ Token string }
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	return tr.Token
}

// auDocker runs the docker CLI against the dockerd at sock with its own
// DOCKER_CONFIG (where docker login keeps credentials) and stdin.
func auDocker(ctx context.Context, t *testing.T, sock, configDir, stdin string, args ...string) (string, error) {
	t.Helper()
	cli := os.Getenv(clients.DockerCLIEnv)
	if cli == "" {
		cli = clients.LookBin(t, "docker")
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if uk := strings.ToUpper(k); strings.HasPrefix(uk, "DOCKER_") || strings.HasSuffix(uk, "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append([]string{"-H", "unix://" + sock}, args...)...)
	cmd.Env = append(env, "DOCKER_CONFIG="+configDir, "DOCKER_CLI_HINTS=false")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// auRepoDigest returns the repo digest docker recorded for ref.
func auRepoDigest(ctx context.Context, t *testing.T, sock, configDir, ref string) string {
	t.Helper()
	out, err := auDocker(ctx, t, sock, configDir, "", "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if err != nil {
		t.Fatal(err)
	}
	var rds []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rds); err != nil {
		t.Fatalf("RepoDigests %q: %v", out, err)
	}
	repo := ref[:strings.LastIndex(ref, ":")]
	for _, rd := range rds {
		if name, d, _ := strings.Cut(rd, "@"); name == repo {
			return d
		}
	}
	t.Fatalf("no repo digest for %s in %v", repo, rds)
	return ""
}

// auGetLoginPassword runs `berth <cmd> --registry URL --password-stdin`
// with BERTH_USERNAME=user and the password on stdin.
func auGetLoginPassword(ctx context.Context, t *testing.T, cmdName, registryURL, user, pass string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary(t), cmdName, "--registry", registryURL, "--password-stdin")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERTH_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "BERTH_USERNAME="+user)
	cmd.Stdin = strings.NewReader(pass + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("berth %s: %w: %s", cmdName, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// TestDockerLoginPushPull: berth get-login-password prints a token that
// docker login takes as the password; docker pushes to and pulls from a
// local repository with it; after docker logout pushes are refused, and an
// anonymous upload gets a Bearer challenge naming the token endpoint.
func TestDockerLoginPushPull(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	up := testreg.Start(t)
	alpine := realImage(t, pushSeed(), 2, runtime.GOARCH, false)
	alpineDigest := up.Push(t, "library/alpine", "latest", alpine).String()
	b := auStartBerth(t, auConfig(up.URL, auHtpasswd(t, auUsers), ""))

	// The token, as `aws ecr get-login-password` prints one.
	token, err := auGetLoginPassword(ctx, t, "get-login-password", b.URL, "alice", auUsers["alice"])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
		t.Fatalf("get-login-password printed %q, want one JWT", token)
	}
	if _, err := auGetLoginPassword(ctx, t, "login", b.URL, "alice", "wrong-password"); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("berth login with a wrong password: %v, want a 401 refusal", err)
	}

	dk := clients.StartDockerd(t, clients.DockerdOptions{Mirrors: []string{b.URL}, InsecureRegistries: []string{b.Addr}})
	cfgDir := t.TempDir()
	docker := func(stdin string, args ...string) (string, error) {
		return auDocker(ctx, t, dk.Socket, cfgDir, stdin, args...)
	}

	// An image to push: pulled anonymously through the mirror (anonymous
	// clients may pull cached repositories).
	if _, err := docker("", "pull", "alpine:latest"); err != nil {
		t.Fatalf("anonymous docker pull through the mirror: %v", err)
	}
	if got := auRepoDigest(ctx, t, dk.Socket, cfgDir, "alpine:latest"); got != alpineDigest {
		t.Errorf("docker pull alpine through berth: %s, want %s", got, alpineDigest)
	}

	out, err := docker(token+"\n", "login", b.Addr, "--username", "alice", "--password-stdin")
	if err != nil {
		t.Fatalf("docker login with the berth token: %v", err)
	}
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("docker login output: %s", out)
	}

	ref := b.Addr + "/private/app:v1"
	if _, err := docker("", "tag", "alpine:latest", ref); err != nil {
		t.Fatal(err)
	}
	out, err = docker("", "push", ref)
	if err != nil {
		t.Fatalf("docker push after login: %v", err)
	}
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	pushed := m[1]
	for _, r := range pushLogRequests(b.Log()) {
		if r.Status == http.StatusForbidden {
			t.Errorf("a request of the logged-in docker push was refused: %s %s %d", r.Method, r.Path, r.Status)
		}
	}

	if _, err := docker("", "rmi", ref, "alpine:latest"); err != nil {
		t.Fatal(err)
	}
	if _, err := docker("", "pull", ref); err != nil {
		t.Fatalf("docker pull of the pushed image: %v", err)
	}
	if got := auRepoDigest(ctx, t, dk.Socket, cfgDir, ref); got != pushed {
		t.Errorf("docker pulled %s back, pushed %s", got, pushed)
	}
	// The registry agrees (alice by password).
	st, h, body := request(ctx, t, nil, http.MethodHead, b.URL+"/v2/private/app/manifests/v1", auBasic("alice"),
		http.Header{"Accept": {allManifestTypes}}, nil)
	if st != http.StatusOK || h.Get("Docker-Content-Digest") != pushed {
		t.Errorf("HEAD private/app:v1 as alice: %d %q %s, want 200 %s", st, h.Get("Docker-Content-Digest"), body, pushed)
	}

	if _, err := docker("", "logout", b.Addr); err != nil {
		t.Fatalf("docker logout: %v", err)
	}
	ref2 := b.Addr + "/private/app:v2"
	if _, err := docker("", "tag", ref, ref2); err != nil {
		t.Fatal(err)
	}
	out, err = docker("", "push", ref2)
	if err == nil {
		t.Fatalf("docker push after logout succeeded:\n%s", out)
	}
	t.Logf("docker push after logout refused: %s", lastLines(strings.TrimSpace(out), 2))
	if lo := strings.ToLower(out); !strings.Contains(lo, "unauthorized") && !strings.Contains(lo, "authentication required") {
		t.Errorf("docker push after logout failed without an authentication error: %s", out)
	}
	st, _, _ = request(ctx, t, nil, http.MethodHead, b.URL+"/v2/private/app/manifests/v2", auBasic("alice"), nil, nil)
	if st != http.StatusNotFound {
		t.Errorf("private/app:v2 after the refused push: HEAD %d, want 404", st)
	}

	st, h, body = request(ctx, t, nil, http.MethodPost, b.URL+"/v2/private/app/blobs/uploads/", cred{}, nil, nil)
	code, _ := pushErrCode(body)
	if st != http.StatusUnauthorized || code != "UNAUTHORIZED" {
		t.Errorf("anonymous POST uploads: %d %s, want 401 UNAUTHORIZED", st, body)
	}
	wa := h.Get("WWW-Authenticate")
	for _, want := range []string{"Bearer ", `realm="http://` + b.Addr + `/token"`, `service="berth"`, `scope="repository:private/app:push"`} {
		if !strings.Contains(wa, want) {
			t.Errorf("WWW-Authenticate %q lacks %s", wa, want)
		}
	}
}

// auStatus returns the HTTP status of a ggcr error, or 0.
func auStatus(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// TestCraneBasicAuth: crane with a user's password pushes and pulls a
// local repository; a wrong password is refused; anonymous crane pulls a
// cached image but not the local one.
func TestCraneBasicAuth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := testreg.Start(t)
	cached := realImage(t, pushSeed(), 2, "amd64", false)
	cachedDigest := up.Push(t, "library/alpine", "latest", cached).String()
	b := auStartBerth(t, auConfig(up.URL, auHtpasswd(t, auUsers), ""))

	alice := crane.WithAuth(&authn.Basic{Username: "alice", Password: auUsers["alice"]})
	ref := b.Addr + "/private/app:v1"
	img := realImage(t, pushSeed(), 2, "amd64", true)
	if err := crane.Push(img, ref, crane.Insecure, crane.WithContext(ctx), alice); err != nil {
		t.Fatalf("crane push as alice: %v", err)
	}
	pulled, err := crane.Pull(ref, crane.Insecure, crane.WithContext(ctx), alice)
	if err != nil {
		t.Fatalf("crane pull as alice: %v", err)
	}
	if got, want := imageDigest(t, pulled), imageDigest(t, img); got != want {
		t.Errorf("crane pulled %s, pushed %s", got, want)
	}
	pushReadImage(t, pulled)

	wrong := crane.WithAuth(&authn.Basic{Username: "alice", Password: "not-her-password"})
	err = crane.Push(realImage(t, pushSeed(), 1, "amd64", true), b.Addr+"/private/app:wrong", crane.Insecure, crane.WithContext(ctx), wrong)
	if err == nil || auStatus(err) != http.StatusUnauthorized {
		t.Errorf("crane push with a wrong password: %v (status %d), want a 401", err, auStatus(err))
	}
	if _, err := crane.Pull(ref, crane.Insecure, crane.WithContext(ctx), wrong); err == nil || auStatus(err) != http.StatusUnauthorized {
		t.Errorf("crane pull with a wrong password: %v (status %d), want a 401", err, auStatus(err))
	}
	if _, err := crane.Digest(b.Addr+"/private/app:wrong", crane.Insecure, crane.WithContext(ctx), alice); err == nil {
		t.Error("private/app:wrong exists after the refused push")
	}

	// Anonymous: cached repositories yes, local ones no.
	anon, err := crane.Pull(b.Addr+"/library/alpine:latest", crane.Insecure, crane.WithContext(ctx))
	if err != nil {
		t.Fatalf("anonymous crane pull of a cached image: %v", err)
	}
	if got := imageDigest(t, anon); got != cachedDigest {
		t.Errorf("anonymous pull of library/alpine: %s, want %s", got, cachedDigest)
	}
	pushReadImage(t, anon)
	_, err = crane.Pull(ref, crane.Insecure, crane.WithContext(ctx))
	if err == nil || auStatus(err) != http.StatusUnauthorized {
		t.Errorf("anonymous crane pull of a local image: %v (status %d), want a 401", err, auStatus(err))
	}
	st, _, _ := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/private/app/manifests/v1", cred{},
		http.Header{"Accept": {allManifestTypes}}, nil)
	if st != http.StatusUnauthorized {
		t.Errorf("anonymous GET of a local manifest: %d, want 401", st)
	}
}
