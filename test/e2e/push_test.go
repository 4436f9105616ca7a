package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"berth/test/clients"
	"berth/test/testreg"
)

// pushLocalConfig is a Berth config with a default (Docker Hub) rule to
// upURL and local repositories under private/.
func pushLocalConfig(upURL string) string {
	return "upstreams:\n" + upstreamConfig("hub", "", "docker.io", upURL, true, "") +
		"local:\n  prefixes: [private]\n  autoCreate: true\n"
}

// pushSeed returns a random seed for realImage, so that every run pushes
// new content.
func pushSeed() uint64 { return rand.Uint64()>>16 + 1000 }

func pushSha256(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushSkopeoPolicy writes an accept-anything signature policy.
func pushSkopeoPolicy(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.json")
	writeFile(t, p, `{"default":[{"type":"insecureAcceptAnything"}]}`)
	return p
}

// pushErrCode returns the first error code and message of a registry error
// body.
func pushErrCode(body []byte) (string, string) {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return "", ""
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

// pushLogRequest is one "request" line of Berth's JSON log.
type pushLogRequest struct {
	Msg    string `json:"msg"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
}

func pushLogRequests(logText string) []pushLogRequest {
	var out []pushLogRequest
	sc := bufio.NewScanner(strings.NewReader(logText))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r pushLogRequest
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Method != "" && r.Path != "" {
			out = append(out, r)
		}
	}
	return out
}

// pushUploadsSince classifies the blob-upload requests berth logged after
// offset: uploads (a session started with 202, or any PATCH/PUT of a
// session) and mounts (POST answered 201: a cross-repository mount; docker
// never pushes monolithically). It also returns the HEADs, for the log.
func pushUploadsSince(b *Berth, offset int) (uploads, mounts, heads []string) {
	for _, r := range pushLogRequests(b.Log()[offset:]) {
		line := fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status)
		switch {
		case strings.Contains(r.Path, "/blobs/uploads/") && r.Method == "POST" && r.Status == http.StatusCreated:
			mounts = append(mounts, line)
		case strings.Contains(r.Path, "/blobs/uploads/") && (r.Method == "POST" || r.Method == "PATCH" || r.Method == "PUT"):
			uploads = append(uploads, line)
		case r.Method == "HEAD":
			heads = append(heads, line)
		}
	}
	return uploads, mounts, heads
}

// pushBlobFiles returns every regular file under dir/blobs with the
// sha256 of its content.
func pushBlobFiles(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[p] = pushSha256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// pushGetBlob GETs a blob from berth and checks it hashes to d.
func pushGetBlob(ctx context.Context, t *testing.T, b *Berth, repo, d string) []byte {
	t.Helper()
	st, _, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/"+repo+"/blobs/"+d, cred{}, nil, nil)
	if st != http.StatusOK {
		t.Errorf("GET blob %s of %s: status %d: %s", d, repo, st, body)
		return nil
	}
	if got := pushSha256(body); got != d {
		t.Errorf("GET blob %s of %s: content hashes to %s (%d bytes)", d, repo, got, len(body))
	}
	return body
}

// pushReadImage reads every layer and the config of img (ggcr verifies the
// digests as it reads).
func pushReadImage(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read layer: %v", err)
		}
		rc.Close()
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
}

// TestPushAndPullBackAcrossClients pushes to a local repository with crane,
// skopeo and docker and pulls each back with another client.
func TestPushAndPullBackAcrossClients(t *testing.T) {
	clients.RequireIsolatedNetns(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	up := testreg.Start(t)
	alpine := realImage(t, pushSeed(), 2, runtime.GOARCH, false)
	alpineDigest := up.Push(t, "library/alpine", "latest", alpine).String()
	up.Reset()
	b := StartBerth(t, "", pushLocalConfig(up.URL))
	policy := pushSkopeoPolicy(t)

	// (a) crane pushes, skopeo pulls back.
	img1 := realImage(t, pushSeed(), 2, "amd64", true)
	d1 := imageDigest(t, img1)
	if err := crane.Push(img1, b.Addr+"/private/app:crane", crane.Insecure, crane.WithContext(ctx)); err != nil {
		t.Fatalf("crane push: %v", err)
	}
	dir1 := filepath.Join(t.TempDir(), "layout")
	if _, err := runSkopeo(ctx, t, policy, "copy", "--src-tls-verify=false",
		"docker://"+b.Addr+"/private/app:crane", "oci:"+dir1+":v1"); err != nil {
		t.Fatalf("skopeo copy from berth: %v", err)
	}
	if got := ociLayoutDigest(t, dir1); got != d1 {
		t.Errorf("skopeo pulled %s, crane pushed %s", got, d1)
	}
	for _, d := range blobDigests(t, img1) {
		raw, err := os.ReadFile(filepath.Join(dir1, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		if err != nil || pushSha256(raw) != d {
			t.Errorf("skopeo layout blob %s: err %v", d, err)
		}
	}

	// (b) skopeo pushes, crane pulls back.
	img2 := realImage(t, pushSeed(), 3, "amd64", true)
	d2 := imageDigest(t, img2)
	dir2 := filepath.Join(t.TempDir(), "layout2")
	p, err := layout.Write(dir2, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img2, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := runSkopeo(ctx, t, policy, "copy", "--dest-tls-verify=false",
		"oci:"+dir2+":v1", "docker://"+b.Addr+"/private/app:skopeo"); err != nil {
		t.Fatalf("skopeo copy to berth: %v", err)
	}
	pulled, err := crane.Pull(b.Addr+"/private/app:skopeo", crane.Insecure, crane.WithContext(ctx))
	if err != nil {
		t.Fatalf("crane pull: %v", err)
	}
	if got, _ := pulled.Digest(); got.String() != d2 {
		t.Errorf("crane pulled %s, skopeo pushed %s", got, d2)
	}
	pushReadImage(t, pulled)
	if n := up.Count("total"); n != 0 {
		t.Errorf("pushes/pulls of private/app reached the upstream: %v", up.Requests())
	}

	// (c) docker pulls alpine through the mirror, tags and pushes it to
	// private/app; ctr pulls it back.
	dk := clients.StartDockerd(t, clients.DockerdOptions{Mirrors: []string{b.URL}, InsecureRegistries: []string{b.Addr}})
	got, err := clients.DockerPull(t, dk.Socket, "alpine:latest")
	if err != nil {
		t.Fatalf("docker pull: %v", err)
	}
	if got != alpineDigest {
		t.Errorf("docker pull alpine: %s, want %s", got, alpineDigest)
	}
	assertOneGETPerBlob(t, "hub", up, "library/alpine", blobDigests(t, alpine))
	up.Reset()

	// First push of the pulled image to this registry host, into a
	// repository that does not exist yet (auto-create): docker has no mount
	// source here, and the layers Berth stores from the upstream are not
	// the new repository's (they are visible only where they came from),
	// so docker uploads them; Berth keeps one copy (checked below).
	freshRef := b.Addr + "/private/fresh:docker"
	if _, err := clients.Docker(t, dk.Socket, "tag", "alpine:latest", freshRef); err != nil {
		t.Fatalf("docker tag: %v", err)
	}
	off := len(b.Log())
	if out, err := clients.Docker(t, dk.Socket, "push", freshRef); err != nil {
		t.Fatalf("docker push %s: %v\n%s", freshRef, err, out)
	}
	uploads, mounts, heads := pushUploadsSince(b, off)
	t.Logf("docker push to new repository private/fresh: HEADs %v, mounts %v, uploads %v", heads, mounts, uploads)

	// private/app exists already (crane and skopeo pushed to it).
	ref := b.Addr + "/private/app:docker"
	if _, err := clients.Docker(t, dk.Socket, "tag", "alpine:latest", ref); err != nil {
		t.Fatalf("docker tag: %v", err)
	}
	off = len(b.Log())
	out, err := clients.Docker(t, dk.Socket, "push", ref)
	t.Logf("docker push:\n%s", out)
	if err != nil {
		t.Fatalf("docker push: %v", err)
	}
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	pushedDigest := m[1]
	uploads, mounts, heads = pushUploadsSince(b, off)
	t.Logf("docker push to private/app: HEADs %v, mounts %v, uploads %v", heads, mounts, uploads)
	// docker mounts the layers from private/fresh, which it pushed them
	// to; a config it uploads (docker does not mount configs), and Berth
	// keeps one copy of it.
	sessions := 0
	for _, u := range uploads {
		if strings.HasPrefix(u, "POST ") {
			sessions++
		}
	}
	if layers := len(blobDigests(t, alpine)) - 1; len(mounts) != layers || sessions > 1 {
		t.Errorf("docker push to private/app: mounts %v, uploads %v; want its %d layers mounted and at most the config uploaded",
			mounts, uploads, layers)
	}

	ctrd := clients.StartContainerd(t)
	hosts := clients.WriteHostsDir(t, b.URL, b.Addr)
	got, err = clients.CtrPull(t, ctrd.Address, hosts, ref)
	if err != nil {
		t.Fatalf("ctr pull %s: %v", ref, err)
	}
	if got != pushedDigest {
		t.Errorf("ctr pulled %s, docker pushed %s", got, pushedDigest)
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("docker push / ctr pull of a local repository reached the upstream: %v", up.Requests())
	}

	// Every blob stored once: the alpine layers pulled through the cache
	// are the files the pushed image uses.
	files := pushBlobFiles(t, b.DataDir)
	perDigest := map[string][]string{}
	for p, d := range files {
		perDigest[d] = append(perDigest[d], p)
		if want := filepath.Base(p); "sha256:"+want != d {
			t.Errorf("blob file %s holds %s", p, d)
		}
	}
	for _, d := range blobDigests(t, alpine) {
		hx := strings.TrimPrefix(d, "sha256:")
		want := filepath.Join(b.DataDir, "blobs", "sha256", hx[:2], hx)
		if ps := perDigest[d]; len(ps) != 1 || ps[0] != want {
			t.Errorf("blob %s stored as %v, want exactly [%s]", d, ps, want)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(b.DataDir, "uploads")); len(left) != 0 {
		t.Errorf("upload session files left after the pushes: %v", left)
	}
}

// TestPushToCachedNamespaceRefused: a push to a name the default rule takes
// is refused and never reaches the upstream.
func TestPushToCachedNamespaceRefused(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := testreg.Start(t)
	b := StartBerth(t, "", pushLocalConfig(up.URL))
	up.Reset()

	img := realImage(t, pushSeed(), 1, "amd64", true)
	err := crane.Push(img, b.Addr+"/library/app:v1", crane.Insecure, crane.WithContext(ctx))
	if err == nil {
		t.Fatal("crane push to library/app (a pull-through namespace) succeeded")
	}
	t.Logf("crane push refused: %v", err)
	if !strings.Contains(err.Error(), "UNSUPPORTED") {
		t.Errorf("crane push error does not carry UNSUPPORTED: %v", err)
	}
	for _, r := range up.Requests() {
		if m, _, _ := strings.Cut(r, " "); m != http.MethodGet && m != http.MethodHead {
			t.Errorf("upstream saw a write during the refused push: %s", r)
		}
	}
	// crane's existence checks (HEAD blob/manifest) are reads and may be
	// proxied; log them.
	t.Logf("upstream requests during the crane push: %v", up.Requests())

	up.Reset()
	st, _, body := request(ctx, t, nil, http.MethodPost, b.URL+"/v2/library/app/blobs/uploads/", cred{}, nil, nil)
	code, msg := pushErrCode(body)
	if st != http.StatusMethodNotAllowed || code != "UNSUPPORTED" || !strings.Contains(msg, "pull-through") {
		t.Errorf("POST uploads in a cached namespace: %d %s %q, want 405 UNSUPPORTED mentioning pull-through", st, code, msg)
	}
	st, _, body = request(ctx, t, nil, http.MethodPut, b.URL+"/v2/library/app/manifests/v1", cred{},
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, []byte(`{"schemaVersion":2}`))
	if code, _ := pushErrCode(body); st != http.StatusMethodNotAllowed || code != "UNSUPPORTED" {
		t.Errorf("PUT manifest in a cached namespace: %d %s", st, body)
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("refused writes reached the upstream: %v", up.Requests())
	}
}
