package e2e

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
	// source here, so only its HEADs can spare the upload of layers Berth
	// already stores.
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
	if len(uploads) != 0 {
		t.Errorf("docker push to a new local repository re-uploaded blobs Berth already stores "+
			"(HEAD of a stored blob answered 404 before the repository existed): %v", uploads)
	}

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
	t.Logf("docker push to private/app: HEADs %v, mounts %v", heads, mounts)
	if len(uploads) != 0 {
		t.Errorf("docker push uploaded blobs Berth already stores (from the upstream): %v", uploads)
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

// pushStartUpload POSTs a new session and returns its absolute URL.
func pushStartUpload(ctx context.Context, t *testing.T, b *Berth, repo string) string {
	t.Helper()
	st, h, body := request(ctx, t, nil, http.MethodPost, b.URL+"/v2/"+repo+"/blobs/uploads/", cred{}, nil, nil)
	if st != http.StatusAccepted {
		t.Fatalf("POST upload: %d %s", st, body)
	}
	loc, err := url.Parse(h.Get("Location"))
	if err != nil || h.Get("Location") == "" {
		t.Fatalf("POST upload: bad Location %q", h.Get("Location"))
	}
	base, _ := url.Parse(b.URL + "/")
	return base.ResolveReference(loc).String()
}

// pushWithDigest adds ?digest= to an upload URL.
func pushWithDigest(loc, d string) string {
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", d)
	u.RawQuery = q.Encode()
	return u.String()
}

func pushPatch(ctx context.Context, t *testing.T, loc string, start int, chunk []byte) {
	t.Helper()
	st, h, body := request(ctx, t, nil, http.MethodPatch, loc, cred{}, http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("%d-%d", start, start+len(chunk)-1)},
	}, chunk)
	if st != http.StatusAccepted {
		t.Fatalf("PATCH %d bytes at %d: %d %s", len(chunk), start, st, body)
	}
	if want := fmt.Sprintf("0-%d", start+len(chunk)-1); h.Get("Range") != want {
		t.Fatalf("PATCH: Range %q, want %q", h.Get("Range"), want)
	}
}

// TestKill9DuringChunkedUpload: an upload session and its first chunk
// survive a SIGKILL; a wrong digest after a restart is refused.
func TestKill9DuringChunkedUpload(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := testreg.Start(t)
	b := StartBerth(t, "", pushLocalConfig(up.URL))
	const repo = "private/chunky"

	data := make([]byte, 3<<20+123)
	crand.Read(data)
	d := pushSha256(data)
	first := 1 << 20

	loc := pushStartUpload(ctx, t, b, repo)
	pushPatch(ctx, t, loc, 0, data[:first])
	b.Kill()
	b.Restart()

	st, h, body := request(ctx, t, nil, http.MethodGet, loc, cred{}, nil, nil)
	if st != http.StatusNoContent || h.Get("Range") != fmt.Sprintf("0-%d", first-1) {
		t.Fatalf("upload status after SIGKILL+restart: %d Range %q %s; want 204 Range 0-%d", st, h.Get("Range"), body, first-1)
	}
	pushPatch(ctx, t, loc, first, data[first:])
	st, h, body = request(ctx, t, nil, http.MethodPut, pushWithDigest(loc, d), cred{}, nil, nil)
	if st != http.StatusCreated || h.Get("Docker-Content-Digest") != d {
		t.Fatalf("PUT ?digest=: %d %q %s, want 201 %s", st, h.Get("Docker-Content-Digest"), body, d)
	}
	if got := pushGetBlob(ctx, t, b, repo, d); !bytes.Equal(got, data) {
		t.Errorf("blob read back differs (%d bytes, want %d)", len(got), len(data))
	}

	// Second session: a wrong digest after the restart.
	data2 := make([]byte, 512<<10)
	crand.Read(data2)
	real2 := pushSha256(data2)
	wrong := pushSha256([]byte("not the uploaded bytes"))
	loc2 := pushStartUpload(ctx, t, b, repo)
	pushPatch(ctx, t, loc2, 0, data2)
	b.Kill()
	b.Restart()
	st, _, body = request(ctx, t, nil, http.MethodPut, pushWithDigest(loc2, wrong), cred{}, nil, nil)
	if code, _ := pushErrCode(body); st != http.StatusBadRequest || code != "DIGEST_INVALID" {
		t.Errorf("PUT with a wrong digest: %d %s, want 400 DIGEST_INVALID", st, body)
	}
	for _, x := range []string{wrong, real2} {
		st, _, _ := request(ctx, t, nil, http.MethodHead, b.URL+"/v2/"+repo+"/blobs/"+x, cred{}, nil, nil)
		if st != http.StatusNotFound {
			t.Errorf("HEAD %s after a refused commit: %d, want 404", x, st)
		}
	}
	for p, x := range pushBlobFiles(t, b.DataDir) {
		if x == real2 || x == wrong {
			t.Errorf("refused upload visible as blob file %s", p)
		}
	}
	if n := up.Count("total"); n != 0 {
		t.Errorf("local uploads reached the upstream: %v", up.Requests())
	}
}

// TestKill9DuringManifestPut: SIGKILL while images are pushed to one tag
// never leaves the tag pointing at a missing manifest or the manifest at a
// missing blob.
func TestKill9DuringManifestPut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	up := testreg.Start(t)
	b := StartBerth(t, "", pushLocalConfig(up.URL))
	const repo = "private/app"
	ref := b.Addr + "/" + repo + ":live"

	var mu sync.Mutex
	attempted := map[string]bool{}
	v1img := realImage(t, pushSeed(), 2, "amd64", true)
	attempted[imageDigest(t, v1img)] = true
	if err := crane.Push(v1img, ref, crane.Insecure, crane.WithContext(ctx)); err != nil {
		t.Fatalf("push v1: %v", err)
	}

	for round := 1; round <= 3; round++ {
		pctx, pcancel := context.WithCancel(ctx)
		var pushed atomic.Int64
		putSeen := make(chan struct{}, 1)
		tr := &pushManifestPutSignal{base: http.DefaultTransport.(*http.Transport).Clone(), seen: putSeen}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for pctx.Err() == nil {
				img := realImage(t, pushSeed(), 1+rand.IntN(3), "amd64", rand.IntN(2) == 0)
				dg, err := img.Digest()
				if err != nil {
					return
				}
				mu.Lock()
				attempted[dg.String()] = true
				mu.Unlock()
				if crane.Push(img, ref, crane.Insecure, crane.WithContext(pctx), crane.WithJobs(4), crane.WithTransport(tr)) == nil {
					pushed.Add(1)
				}
			}
		}()
		time.Sleep(100*time.Millisecond + rand.N(1900*time.Millisecond))
		how := "at a random moment"
		if round > 1 {
			// Aim at a manifest PUT in flight: wait for the next one to
			// be sent, then kill within a few hundred microseconds.
			select {
			case <-putSeen: // stale
			default:
			}
			select {
			case <-putSeen:
				time.Sleep(rand.N(300 * time.Microsecond))
				how = "during a manifest PUT"
			case <-time.After(5 * time.Second):
				t.Errorf("round %d: no manifest PUT within 5s", round)
			}
		}
		b.Kill()
		pcancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("pusher did not stop after the kill")
		}
		t.Logf("round %d: SIGKILL %s, after %d completed pushes", round, how, pushed.Load())
		b.Restart()

		st, h, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/"+repo+"/manifests/live", cred{},
			http.Header{"Accept": {allManifestTypes}}, nil)
		if st != http.StatusOK {
			t.Fatalf("round %d: GET manifests/live: %d %s", round, st, body)
		}
		dg := pushSha256(body)
		if h.Get("Docker-Content-Digest") != dg {
			t.Errorf("round %d: Docker-Content-Digest %q, body hashes to %s", round, h.Get("Docker-Content-Digest"), dg)
		}
		mu.Lock()
		known := attempted[dg]
		mu.Unlock()
		if !known {
			t.Errorf("round %d: live is %s, an image nobody pushed", round, dg)
		}
		var m struct {
			Config v1.Descriptor   `json:"config"`
			Layers []v1.Descriptor `json:"layers"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("round %d: manifest: %v", round, err)
		}
		for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if got := pushGetBlob(ctx, t, b, repo, desc.Digest.String()); got != nil && int64(len(got)) != desc.Size {
				t.Errorf("round %d: blob %s: %d bytes, manifest says %d", round, desc.Digest, len(got), desc.Size)
			}
		}
		// The tag still takes pushes after the restart.
		img := realImage(t, pushSeed(), 1, "amd64", true)
		if err := crane.Push(img, ref, crane.Insecure, crane.WithContext(ctx)); err != nil {
			t.Fatalf("round %d: push after restart: %v", round, err)
		}
		if d, err := crane.Digest(ref, crane.Insecure, crane.WithContext(ctx)); err != nil || d != imageDigest(t, img) {
			t.Errorf("round %d: live after a new push is %s (%v), want %s", round, d, err, imageDigest(t, img))
		}
		mu.Lock()
		attempted[imageDigest(t, img)] = true
		mu.Unlock()
	}
}

// pushManifestPutSignal is a transport that reports (without blocking)
// each manifest PUT whose body it has just finished sending.
type pushManifestPutSignal struct {
	base http.RoundTripper
	seen chan struct{}
}

func (p *pushManifestPutSignal) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && r.Body != nil {
		r = r.Clone(r.Context())
		r.Body = &pushSignalBody{ReadCloser: r.Body, seen: p.seen}
	}
	return p.base.RoundTrip(r)
}

type pushSignalBody struct {
	io.ReadCloser
	seen chan struct{}
	once sync.Once
}

func (b *pushSignalBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(func() {
			select {
			case b.seen <- struct{}{}:
			default:
			}
		})
	}
	return n, err
}

// pushRawBlob pushes data to a registry monolithically.
func pushRawBlob(t *testing.T, regURL, repo string, data []byte) string {
	t.Helper()
	d := pushSha256(data)
	req, _ := http.NewRequest(http.MethodPost, regURL+"/v2/"+repo+"/blobs/uploads/?digest="+d, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob to %s: %s %s", regURL, resp.Status, body)
	}
	return d
}

// pushRawManifest PUTs a manifest body as repo:ref and returns its digest.
func pushRawManifest(t *testing.T, regURL, repo, ref, mediaType string, body []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, regURL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest %s:%s: %s %s", repo, ref, resp.Status, b)
	}
	return pushSha256(body)
}

const (
	pushSigArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	pushEmptyConfig     = `{}`
)

// pushSignature pushes a signature manifest (OCI artifact, subject = the
// image) to repo by digest and returns its descriptor.
func pushSignature(t *testing.T, regURL, repo string, subject v1.Descriptor, payload string) v1.Descriptor {
	t.Helper()
	cfg := pushRawBlob(t, regURL, repo, []byte(pushEmptyConfig))
	sig := pushRawBlob(t, regURL, repo, []byte(payload))
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  pushSigArtifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": len(pushEmptyConfig)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sig, "size": len(payload)}},
		"subject":       map[string]any{"mediaType": string(subject.MediaType), "digest": subject.Digest.String(), "size": subject.Size},
	}
	body, _ := json.Marshal(m)
	d := pushRawManifest(t, regURL, repo, pushSha256(body), "application/vnd.oci.image.manifest.v1+json", body)
	h, _ := v1.NewHash(d)
	return v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: h, Size: int64(len(body)), ArtifactType: pushSigArtifactType}
}

// pushGetReferrers asks berth for the referrers of d in repo.
func pushGetReferrers(ctx context.Context, t *testing.T, b *Berth, repo, d string) []v1.Descriptor {
	t.Helper()
	st, h, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/"+repo+"/referrers/"+d, cred{}, nil, nil)
	if st != http.StatusOK {
		t.Fatalf("GET referrers of %s: %d %s", d, st, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("referrers Content-Type %q", ct)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers body: %v: %s", err, body)
	}
	return idx.Manifests
}

func pushHasDescriptor(list []v1.Descriptor, want v1.Descriptor) bool {
	for _, d := range list {
		if d.Digest == want.Digest && d.Size == want.Size && d.MediaType == want.MediaType {
			return true
		}
	}
	return false
}

// TestProxiedReferrers lists an upstream image's signature through a
// prefixed rule: by the referrers tag schema on an upstream without the
// referrers API, and by subject on one with it; both cached for the TTL.
func TestProxiedReferrers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("TagSchema", func(t *testing.T) {
		up := testreg.Start(t) // no referrers API: 404 on /referrers/
		img := realImage(t, pushSeed(), 1, "amd64", true)
		imgDigest := up.Push(t, "team/app", "v1", img)
		mf, _ := img.RawManifest()
		subject := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: imgDigest, Size: int64(len(mf))}
		sig := pushSignature(t, up.URL, "team/app", subject, `{"critical":{"image":{"docker-manifest-digest":"`+imgDigest.String()+`"}}}`)
		// The OCI referrers tag schema: an index tagged sha256-<hex>.
		idx, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.index.v1+json",
			"manifests": []any{map[string]any{"mediaType": string(sig.MediaType), "digest": sig.Digest.String(),
				"size": sig.Size, "artifactType": sig.ArtifactType}},
		})
		pushRawManifest(t, up.URL, "team/app", "sha256-"+imgDigest.Hex, "application/vnd.oci.image.index.v1+json", idx)
		up.Reset()

		b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, "    ttl: 1h\n"))
		list := pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String())
		if !pushHasDescriptor(list, sig) || len(list) != 1 {
			t.Errorf("referrers of %s: %+v, want the signature %s", imgDigest, list, sig.Digest)
		} else if list[0].ArtifactType != pushSigArtifactType {
			t.Errorf("referrer artifactType %q, want %q", list[0].ArtifactType, pushSigArtifactType)
		}
		t.Logf("upstream requests for the first referrers call: %v", up.Requests())
		if up.Count("total") == 0 {
			t.Error("first referrers request did not reach the upstream")
		}
		up.Reset()
		list = pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String())
		if !pushHasDescriptor(list, sig) {
			t.Errorf("second referrers call: %+v", list)
		}
		if n := up.Count("total"); n != 0 {
			t.Errorf("second referrers call within the TTL reached the upstream: %v", up.Requests())
		}
		// artifactType filter is applied on the cached list.
		st, h, body := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/up/team/app/referrers/"+imgDigest.String()+"?artifactType=application/x-none", cred{}, nil, nil)
		if st != 200 || h.Get("OCI-Filters-Applied") != "artifactType" || strings.Contains(string(body), sig.Digest.String()) {
			t.Errorf("filtered referrers: %d %q %s", st, h.Get("OCI-Filters-Applied"), body)
		}
	})

	t.Run("ReferrersAPI", func(t *testing.T) {
		reg := testreg.Start(t, testreg.WithReferrers())
		img := realImage(t, pushSeed(), 1, "amd64", true)
		if err := crane.Push(img, strings.TrimPrefix(reg.URL, "http://")+"/team/app:v1", crane.Insecure); err != nil {
			t.Fatal(err)
		}
		imgDigest, _ := img.Digest()
		mf, _ := img.RawManifest()
		subject := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: imgDigest, Size: int64(len(mf))}
		sig := pushSignature(t, reg.URL, "team/app", subject, `{"sig":"by-subject"}`)
		reg.Reset()

		b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", reg.URL, false, "    ttl: 1h\n"))
		list := pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String())
		if !pushHasDescriptor(list, sig) || len(list) != 1 {
			t.Errorf("referrers (API) of %s: %+v, want the signature %s", imgDigest, list, sig.Digest)
		}
		if reg.Count("total") == 0 {
			t.Error("first referrers request did not reach the upstream")
		}
		reg.Reset()
		if list := pushGetReferrers(ctx, t, b, "up/team/app", imgDigest.String()); !pushHasDescriptor(list, sig) {
			t.Errorf("second referrers call: %+v", list)
		}
		if n := reg.Count("total"); n != 0 {
			t.Errorf("second referrers call within the TTL made %d upstream requests", n)
		}
	})
}
