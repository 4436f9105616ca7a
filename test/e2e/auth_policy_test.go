package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"

	"berth/test/testreg"
)

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
	drain := func(user string, want int) {
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
		if admitted != want {
			t.Errorf("%s: %d requests admitted, want %d", user, admitted, want)
		}
		if limited == 0 {
			t.Errorf("%s: no 429 after %d requests", user, burst+50)
		}
	}
	// A token request is charged to the user's bucket like any request:
	// alice's, taken first, leaves her the burst less one.
	tok := auToken(ctx, t, clientsByIP[1], b, auBasic("alice"), "repository:library/alpine:pull")
	drain("alice", burst-1)
	// alice's empty bucket is not bob's, nor the anonymous clients'.
	drain("bob", burst)
	for _, c := range clientsByIP {
		st, h, body := request(ctx, t, c, http.MethodGet, b.URL+"/v2/library/alpine/manifests/latest", cred{},
			http.Header{"Accept": {allManifestTypes}}, nil)
		if st != http.StatusOK || h.Get("Docker-Content-Digest") != cachedDigest {
			t.Errorf("anonymous pull after the users' buckets emptied: %d %s, want 200", st, body)
		}
	}
	// Still limited: by name, whatever the address or credential form,
	// and at the token endpoint too.
	st, _, body := request(ctx, t, clientsByIP[1], http.MethodGet, b.URL+"/v2/library/alpine/manifests/latest", cred{bearer: tok},
		http.Header{"Accept": {allManifestTypes}}, nil)
	if st != http.StatusTooManyRequests {
		t.Errorf("alice with a bearer token after her bucket emptied: %d %s, want 429", st, body)
	}
	st, _, body = request(ctx, t, clientsByIP[0], http.MethodGet, b.URL+"/token?service=berth", auBasic("alice"), nil, nil)
	if code, _ := pushErrCode(body); st != http.StatusTooManyRequests || code != "TOOMANYREQUESTS" {
		t.Errorf("alice's token request after her bucket emptied: %d %s, want 429 TOOMANYREQUESTS", st, body)
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
