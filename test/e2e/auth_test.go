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

const (
	// auNamespacePolicy: bob may not push under private/, group ops may
	// delete there.
	auNamespacePolicy = `{"Version": "2012-10-17", "Statement": [
  {"Sid": "NoPushForBob", "Effect": "Deny", "Principal": {"AWS": "user:bob"}, "Action": ["ecr:PutImage", "push"]},
  {"Sid": "OpsDelete", "Effect": "Allow", "Principal": {"AWS": ["group:ops"]}, "Action": "ecr:BatchDeleteImage"}]}`
	// auSecretPolicy: private/secret is pulled only from 127.0.0.2.
	auSecretPolicy = `{"Version": "2012-10-17", "Statement": [
  {"Sid": "PullFromAdminHost", "Effect": "Allow", "Principal": {"AWS": "user:*"}, "Action": "pull",
   "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.2/32"}}},
  {"Sid": "NoPullElsewhere", "Effect": "Deny", "Principal": "*", "Action": "pull",
   "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.2/32"]}}}]}`
)

// TestPolicies: namespace and repository policies: a Deny for one user, an
// Allow for a group, a source-address condition, and a cross-repository
// mount from a source the user may not pull.
func TestPolicies(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := testreg.Start(t)
	dir := t.TempDir()
	nsPolicy, secretPolicy := filepath.Join(dir, "private.json"), filepath.Join(dir, "secret.json")
	writeFile(t, nsPolicy, auNamespacePolicy)
	writeFile(t, secretPolicy, auSecretPolicy)
	b := auStartBerth(t, auConfig(up.URL, auHtpasswd(t, auUsers), fmt.Sprintf(
		"  groups:\n    ops: [alice]\n  policies:\n    - namespace: \"private/*\"\n      file: %q\n    - repository: private/secret\n      file: %q\n",
		nsPolicy, secretPolicy)))
	local, admin := auClient("127.0.0.1"), auClient("127.0.0.2")
	accept := http.Header{"Accept": {allManifestTypes}}
	expectDenied := func(what string, st int, body []byte) {
		t.Helper()
		if code, _ := pushErrCode(body); st != http.StatusForbidden || code != "DENIED" {
			t.Errorf("%s: %d %s, want 403 DENIED", what, st, body)
		}
	}

	// Namespace policy: bob may pull but not push; ops may delete.
	appDigest := auPushImage(ctx, t, local, b, auBasic("alice"), "private/app", "v1", realImage(t, pushSeed(), 2, "amd64", true))
	st, _, body := request(ctx, t, local, http.MethodPost, b.URL+"/v2/private/app/blobs/uploads/", auBasic("bob"), nil, nil)
	expectDenied("bob POST upload to private/app", st, body)
	st, _, body = request(ctx, t, local, http.MethodPut, b.URL+"/v2/private/app/manifests/bob", auBasic("bob"),
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, []byte(`{"schemaVersion":2}`))
	expectDenied("bob PUT manifest to private/app", st, body)
	st, h, body := request(ctx, t, local, http.MethodGet, b.URL+"/v2/private/app/manifests/v1", auBasic("bob"), accept, nil)
	if st != http.StatusOK || h.Get("Docker-Content-Digest") != appDigest {
		t.Errorf("bob pull private/app:v1: %d %q %s, want 200 %s", st, h.Get("Docker-Content-Digest"), body, appDigest)
	}
	// bob's token carries pull only.
	bobTok := auToken(ctx, t, local, b, auBasic("bob"), "repository:private/app:pull,push")
	st, _, body = request(ctx, t, local, http.MethodPost, b.URL+"/v2/private/app/blobs/uploads/", cred{bearer: bobTok}, nil, nil)
	expectDenied("bob POST upload with his token", st, body)
	st, _, body = request(ctx, t, local, http.MethodDelete, b.URL+"/v2/private/app/manifests/"+appDigest, auBasic("bob"), nil, nil)
	expectDenied("bob DELETE manifest (not in ops)", st, body)
	st, _, body = request(ctx, t, local, http.MethodDelete, b.URL+"/v2/private/app/manifests/"+appDigest, auBasic("alice"), nil, nil)
	if st != http.StatusAccepted {
		t.Errorf("alice (ops) DELETE manifest: %d %s, want 202", st, body)
	}
	if st, _, _ = request(ctx, t, local, http.MethodGet, b.URL+"/v2/private/app/manifests/"+appDigest, auBasic("alice"), accept, nil); st != http.StatusNotFound {
		t.Errorf("GET the deleted manifest: %d, want 404", st)
	}

	// Repository policy with source addresses: private/secret is pulled
	// from 127.0.0.2 only.
	secret := realImage(t, pushSeed(), 1, "amd64", true)
	secretDigest := auPushImage(ctx, t, local, b, auBasic("alice"), "private/secret", "v1", secret)
	secretLayer := blobDigests(t, secret)[1]
	st, _, body = request(ctx, t, local, http.MethodGet, b.URL+"/v2/private/secret/manifests/v1", auBasic("alice"), accept, nil)
	expectDenied("alice pull private/secret from 127.0.0.1", st, body)
	st, _, body = request(ctx, t, local, http.MethodGet, b.URL+"/v2/private/secret/blobs/"+secretLayer, auBasic("alice"), nil, nil)
	expectDenied("alice GET private/secret blob from 127.0.0.1", st, body)
	for _, u := range []string{"alice", "bob"} {
		st, h, body = request(ctx, t, admin, http.MethodGet, b.URL+"/v2/private/secret/manifests/v1", auBasic(u), accept, nil)
		if st != http.StatusOK || h.Get("Docker-Content-Digest") != secretDigest {
			t.Errorf("%s pull private/secret from 127.0.0.2: %d %s, want 200", u, st, body)
		}
	}
	if st, _, _ = request(ctx, t, admin, http.MethodGet, b.URL+"/v2/private/secret/manifests/v1", cred{}, accept, nil); st != http.StatusUnauthorized {
		t.Errorf("anonymous pull of private/secret from 127.0.0.2: %d, want 401", st)
	}
	// The token endpoint applies the condition too.
	tok1 := auToken(ctx, t, local, b, auBasic("alice"), "repository:private/secret:pull")
	st, _, body = request(ctx, t, local, http.MethodGet, b.URL+"/v2/private/secret/manifests/v1", cred{bearer: tok1}, accept, nil)
	expectDenied("alice pull private/secret with a token got from 127.0.0.1", st, body)
	tok2 := auToken(ctx, t, admin, b, auBasic("alice"), "repository:private/secret:pull")
	st, _, _ = request(ctx, t, admin, http.MethodGet, b.URL+"/v2/private/secret/manifests/v1", cred{bearer: tok2}, accept, nil)
	if st != http.StatusOK {
		t.Errorf("alice pull private/secret with a token got from 127.0.0.2: %d, want 200", st)
	}

	// A mount of private/secret's layer into private/other by alice from
	// 127.0.0.1, who may push there but may not pull private/secret, is
	// not done: she gets an ordinary upload session (202), not 201.
	mountURL := b.URL + "/v2/private/other/blobs/uploads/?mount=" + secretLayer + "&from=private/secret"
	pushTok := auToken(ctx, t, local, b, auBasic("alice"), "repository:private/other:pull,push", "repository:private/secret:pull")
	for _, c := range []struct {
		name string
		cred cred
	}{{"Basic", auBasic("alice")}, {"Bearer", cred{bearer: pushTok}}} {
		st, h, body := request(ctx, t, local, http.MethodPost, mountURL, c.cred, nil, nil)
		if st != http.StatusAccepted || h.Get("Location") == "" {
			t.Errorf("mount (%s) from private/secret by a user who may not pull it: %d %s, want 202 and an upload session", c.name, st, body)
			continue
		}
		loc, _ := url.Parse(h.Get("Location"))
		base, _ := url.Parse(b.URL + "/")
		if st, _, body := request(ctx, t, local, http.MethodDelete, base.ResolveReference(loc).String(), c.cred, nil, nil); st != http.StatusNoContent {
			t.Errorf("cancel the upload session: %d %s", st, body)
		}
	}
	// From 127.0.0.2 alice may pull private/secret: the mount is done.
	st, _, body = request(ctx, t, admin, http.MethodPost, mountURL, auBasic("alice"), nil, nil)
	if st != http.StatusCreated {
		t.Errorf("mount from 127.0.0.2: %d %s, want 201", st, body)
	}
}

// TestRateLimitPerUser: authenticated users have a bucket each, keyed by
// name; anonymous clients are limited by address in their own buckets.
func TestRateLimitPerUser(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := testreg.Start(t)
	cachedDigest := up.Push(t, "library/alpine", "latest", realImage(t, pushSeed(), 1, "amd64", false)).String()
	// A bucket refills one token in 1000 s: never within the test, however
	// slow the machine, so the counts are exact.
	const burst = 400
	b := auStartBerth(t, auConfig(up.URL, auHtpasswd(t, auUsers), "")+
		fmt.Sprintf("rateLimit:\n  requestsPerSecond: 0.001\n  burst: %d\n", burst))

	// Each user from two source addresses: the bucket follows the user.
	clientsByIP := []*http.Client{auClient("127.0.0.1"), auClient("127.0.0.3")}
	drain := func(user string) {
		t.Helper()
		start := time.Now()
		admitted, limited := 0, 0
		for i := 0; i < burst+50; i++ {
			st, h, body := request(ctx, t, clientsByIP[i%2], http.MethodGet, b.URL+"/v2/", auBasic(user), nil, nil)
			switch st {
			case http.StatusOK:
				admitted++
			case http.StatusTooManyRequests:
				if code, _ := pushErrCode(body); code != "TOOMANYREQUESTS" || h.Get("Retry-After") == "" {
					t.Errorf("%s: 429 without TOOMANYREQUESTS and Retry-After: %v %s", user, h, body)
				}
				limited++
			default:
				t.Fatalf("%s: GET /v2/: %d %s", user, st, body)
			}
		}
		t.Logf("%s: %d admitted, %d refused with 429 in %v", user, admitted, limited, time.Since(start).Round(time.Millisecond))
		if admitted != burst {
			t.Errorf("%s: %d requests admitted, want the burst %d", user, admitted, burst)
		}
		if limited == 0 {
			t.Errorf("%s: no 429 after %d requests", user, burst+50)
		}
	}
	drain("alice")
	// alice's empty bucket is not bob's, nor the anonymous clients'.
	drain("bob")
	for _, c := range clientsByIP {
		st, h, body := request(ctx, t, c, http.MethodGet, b.URL+"/v2/library/alpine/manifests/latest", cred{},
			http.Header{"Accept": {allManifestTypes}}, nil)
		if st != http.StatusOK || h.Get("Docker-Content-Digest") != cachedDigest {
			t.Errorf("anonymous pull after the users' buckets emptied: %d %s, want 200", st, body)
		}
	}
	// Still limited: by name, whatever the address or credential form.
	tok := auToken(ctx, t, clientsByIP[1], b, auBasic("alice"), "repository:library/alpine:pull")
	st, _, body := request(ctx, t, clientsByIP[1], http.MethodGet, b.URL+"/v2/library/alpine/manifests/latest", cred{bearer: tok},
		http.Header{"Accept": {allManifestTypes}}, nil)
	if st != http.StatusTooManyRequests {
		t.Errorf("alice with a bearer token after her bucket emptied: %d %s, want 429", st, body)
	}

	// An anonymous address has a bucket of its own: drain 127.0.0.4's.
	anon := auClient("127.0.0.4")
	admitted := 0
	for i := 0; i < burst+50; i++ {
		st, _, body := request(ctx, t, anon, http.MethodHead, b.URL+"/v2/library/alpine/manifests/latest", cred{},
			http.Header{"Accept": {allManifestTypes}}, nil)
		if st == http.StatusTooManyRequests {
			break
		}
		if st != http.StatusOK {
			t.Fatalf("anonymous HEAD manifest: %d %s", st, body)
		}
		admitted++
	}
	if admitted != burst {
		t.Errorf("anonymous client 127.0.0.4: %d admitted before a 429, want %d", admitted, burst)
	}
	st, _, _ = request(ctx, t, clientsByIP[0], http.MethodHead, b.URL+"/v2/library/alpine/manifests/latest", cred{},
		http.Header{"Accept": {allManifestTypes}}, nil)
	if st != http.StatusOK {
		t.Errorf("anonymous 127.0.0.1 after 127.0.0.4 emptied its bucket: %d, want 200", st)
	}
}

// TestAdminAPINeedsAnAdmin: with auth on, the admin API takes only members
// of the admin group, through the CLI's BERTH_USERNAME/BERTH_PASSWORD.
func TestAdminAPINeedsAnAdmin(t *testing.T) {
	up := testreg.Start(t)
	b := auStartBerth(t, auConfig(up.URL, auHtpasswd(t, auUsers), "  groups:\n    admins: [alice]\n"))
	run := func(user string) (string, error) {
		cmd := exec.Command(binary(t), "describe-repositories", "--admin", b.AdminURL)
		cmd.Env = append(os.Environ(), "BERTH_USERNAME="+user, "BERTH_PASSWORD="+auUsers[user])
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("alice"); err != nil {
		t.Fatalf("admin alice refused: %v\n%s", err, out)
	}
	if out, err := run("bob"); err == nil || !strings.Contains(out, "DENIED") {
		t.Fatalf("bob (not an admin) got in: %v\n%s", err, out)
	}
	if out, err := run(""); err == nil || !strings.Contains(out, "UNAUTHORIZED") {
		t.Fatalf("anonymous got in: %v\n%s", err, out)
	}
	// Metrics and health stay open to the scraper.
	resp, err := http.Get(b.AdminURL + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestRepositoryPolicyThroughAdminAPI: a policy set with the CLI takes
// effect at once, survives a restart, and its deletion lifts it.
func TestRepositoryPolicyThroughAdminAPI(t *testing.T) {
	up := testreg.Start(t)
	b := auStartBerth(t, auConfig(up.URL, auHtpasswd(t, auUsers), "  groups:\n    admins: [alice]\n"))
	img := testreg.Image(t, 91, 1024)
	if err := crane.Push(img, b.Addr+"/private/app:v1", crane.WithAuth(&authn.Basic{Username: "alice", Password: auUsers["alice"]})); err != nil {
		t.Fatal(err)
	}
	bobPull := func() error {
		_, err := crane.Pull(b.Addr+"/private/app:v1", crane.WithAuth(&authn.Basic{Username: "bob", Password: auUsers["bob"]}))
		return err
	}
	admin := func(args ...string) {
		t.Helper()
		cmd := exec.Command(binary(t), append(args, "--admin", b.AdminURL)...)
		cmd.Env = append(os.Environ(), "BERTH_USERNAME=alice", "BERTH_PASSWORD="+auUsers["alice"])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("berth %s: %v\n%s", args[0], err, out)
		}
	}
	if err := bobPull(); err != nil {
		t.Fatalf("bob may pull by default: %v", err)
	}
	admin("set-repository-policy", "--repository-name", "private/app", "--policy-text",
		`{"Version":"2012-10-17","Statement":[{"Sid":"nobob","Effect":"Deny","Principal":{"AWS":["user:bob"]},"Action":["pull"]}]}`)
	if err := bobPull(); auStatus(err) != http.StatusForbidden {
		t.Fatalf("bob pulled past a Deny set through the admin API: %v", err)
	}
	b.Restart()
	if err := bobPull(); auStatus(err) != http.StatusForbidden {
		t.Fatalf("the policy did not survive a restart: %v", err)
	}
	admin("delete-repository-policy", "--repository-name", "private/app")
	if err := bobPull(); err != nil {
		t.Fatalf("bob still refused after the policy was deleted: %v", err)
	}
}
