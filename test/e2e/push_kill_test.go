package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth/test/testreg"
)

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
