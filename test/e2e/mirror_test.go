package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCranePullByPrefix(t *testing.T) {
	up := testreg.Start(t)
	sizes := make([]int, 20)
	for i := range sizes {
		sizes[i] = 4096 + i
	}
	want := up.Push(t, "team/app", "v1", testreg.Image(t, 1, sizes...))
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, ""))
	up.Reset()

	pull := func() v1.Image {
		img, err := crane.Pull(b.Addr + "/up/team/app:v1")
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); d != want {
			t.Fatalf("digest %s, want %s", d, want)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed() // verifies the digest as it reads
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
		if _, err := img.RawConfigFile(); err != nil {
			t.Fatal(err)
		}
		return img
	}
	start := time.Now()
	pull()
	t.Logf("cold pull took %v", time.Since(start))
	if n := up.Count("GET blobs"); n != 21 {
		t.Fatalf("first pull: %d upstream blob GETs, want 21 (20 layers + config)", n)
	}
	up.Reset()
	start = time.Now()
	pull()
	t.Logf("warm pull took %v", time.Since(start))
	if n := up.Count("total"); n != 0 {
		t.Fatalf("second pull: %d upstream requests, want 0: %v", n, up.Requests())
	}
}

// TestKill9DuringFill kills berth with SIGKILL in the middle of a 100 MiB
// fill, restarts it, and checks that no partial data is left and that the
// blob then pulls whole and verified.
func TestKill9DuringFill(t *testing.T) {
	up := testreg.Start(t)
	img := testreg.Image(t, 7, 100<<20)
	up.Push(t, "big/app", "v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	up.SlowBlobs(20 * time.Millisecond) // ~2 s for the whole blob
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, ""))

	resp, err := b.Do(context.Background(), http.MethodGet, "/v2/up/big/app/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10<<20)); err != nil {
		t.Fatal(err)
	}
	b.Kill()
	resp.Body.Close()
	tmp, _ := os.ReadDir(filepath.Join(b.DataDir, "tmp"))
	if len(tmp) == 0 {
		t.Fatal("expected a partial fill on disk at the time of the kill")
	}

	up.Mutate(nil)
	b.Restart()
	if tmp, _ := os.ReadDir(filepath.Join(b.DataDir, "tmp")); len(tmp) != 0 {
		t.Fatalf("partial fills left after restart: %v", tmp)
	}
	var blobs []string
	filepath.WalkDir(filepath.Join(b.DataDir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			blobs = append(blobs, p)
		}
		return nil
	})
	if len(blobs) != 0 {
		t.Fatalf("blob files visible after a killed fill: %v", blobs)
	}
	// HEAD says unknown locally? It asks the upstream; a GET fills again.
	resp, err = b.Do(context.Background(), http.MethodGet, "/v2/up/big/app/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, got, err := hashBody(resp)
	if err != nil || n != 100<<20 || got != ld.String() {
		t.Fatalf("after restart: %d bytes hashing to %s, err %v; want %s", n, got, err, ld.String())
	}
	// And every stored blob hashes to its name.
	b.Kill()
	b.start()
	filepath.WalkDir(filepath.Join(b.DataDir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, _ := os.Open(p)
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		if hex.EncodeToString(h.Sum(nil)) != filepath.Base(p) {
			t.Errorf("stored blob %s does not hash to its name", p)
		}
		return nil
	})
}

// TestRateLimit sends a bounded burst of 600 requests from one client: 400
// pass, the rest get 429 TOOMANYREQUESTS with Retry-After; a client from
// another address is unaffected.
func TestRateLimit(t *testing.T) {
	up := testreg.Start(t)
	b := StartBerth(t, "", "rateLimit:\n  requestsPerSecond: 1\n  burst: 400\nupstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, ""))
	client := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
	}
	c1 := client("127.0.0.3") // the start-up probe used 127.0.0.1
	ok, limited := 0, 0
	var last *http.Response
	var lastBody []byte
	for range 600 {
		resp, err := c1.Get(b.URL + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			ok++
		case 429:
			limited++
			last, lastBody = resp, body
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// One token per second refills during the loop; allow for a few.
	if ok < 400 || ok > 405 || limited != 600-ok {
		t.Fatalf("%d admitted and %d limited; want 400 (+ refill) then 429s", ok, limited)
	}
	if ra := last.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without Retry-After: %v", last.Header)
	}
	var eb struct{ Errors []struct{ Code string } }
	if json.Unmarshal(lastBody, &eb); len(eb.Errors) != 1 || eb.Errors[0].Code != "TOOMANYREQUESTS" {
		t.Fatalf("429 body %s", lastBody)
	}
	c2 := client("127.0.0.2")
	resp, err := c2.Get(b.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another client got %d", resp.StatusCode)
	}
}

// TestBadInput checks the OCI errors the binary returns for bad requests.
func TestBadInput(t *testing.T) {
	up := testreg.Start(t)
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, ""))
	digest := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name, method, path string
		hdr                http.Header
		status             int
		code               string
	}{
		{name: "upper-case name", method: "GET", path: "/v2/up/Team/manifests/v1", status: 400, code: "NAME_INVALID"},
		{name: "bad digest", method: "GET", path: "/v2/up/team/blobs/sha256:xyz", status: 400, code: "DIGEST_INVALID"},
		{name: "unknown algorithm", method: "GET", path: "/v2/up/team/blobs/md5:" + strings.Repeat("0", 32), status: 400, code: "DIGEST_INVALID"},
		{name: "unknown manifest", method: "GET", path: "/v2/up/team/app/manifests/nope", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "unknown blob", method: "GET", path: "/v2/up/team/app/blobs/" + digest, status: 404, code: "BLOB_UNKNOWN"},
		{name: "unrouted name", method: "GET", path: "/v2/nowhere/app/manifests/v1", status: 404, code: "NAME_UNKNOWN"},
		{name: "delete on cache", method: "DELETE", path: "/v2/up/team/app/manifests/v1", status: 405, code: "UNSUPPORTED"},
		{name: "put on cache", method: "PUT", path: "/v2/up/team/app/manifests/v1", status: 405, code: "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := b.Do(context.Background(), tt.method, tt.path, tt.hdr)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &eb); err != nil || resp.StatusCode != tt.status || len(eb.Errors) != 1 || eb.Errors[0].Code != tt.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}

// hashBody reads resp's body to its end and closes it: its length and
// sha256 digest.
func hashBody(resp *http.Response) (int64, string, error) {
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}
