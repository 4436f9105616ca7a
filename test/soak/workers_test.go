//go:build soak

package soak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"berth/internal/oci"
	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// seedUpstream pushes the upstream's first images: single images and an
// index per repository.
func (s *soak) seedUpstream() {
	for i := range 12 {
		s.pushUpstream(i)
	}
	idx, err := random.Index(128<<10, 2, 3)
	if err != nil {
		s.t.Fatal(err)
	}
	ref, _ := name.ParseReference(s.up.Host()+"/lib/multi:v1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		s.t.Fatal(err)
	}
	d, _ := idx.Digest()
	s.cached = append(s.cached, image{"lib/multi", "v1"}, image{"lib/multi", d.String()})
	s.up.Mutate(s.chaos)
}

// chaos makes the upstream fail now and then while it serves pulls: 3% of
// manifest GETs answer 503, 2% a body that is no manifest, and 3% of blob
// GETs stop halfway. Berth must answer its clients with verified bytes or
// an error, never with wrong bytes or a 500.
func (s *soak) chaos(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	n := rand.IntN(100)
	switch testreg.Kind(r.URL.Path) {
	case "manifests":
		switch {
		case n < 3:
			s.outcome("upstream chaos: manifest 503")
			http.Error(w, "chaos", http.StatusServiceUnavailable)
			return true
		case n < 5:
			s.outcome("upstream chaos: not a manifest")
			w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
			io.WriteString(w, `{"schemaVersion":2,"config":{"digest":"sha256:chaos","size":-1}}`)
			return true
		}
	case "blobs":
		if n < 3 {
			s.outcome("upstream chaos: blob cut short")
			s.up.Serve(&halfWriter{ResponseWriter: w}, r)
			return true
		}
	}
	return false
}

// halfWriter passes on the first half of a body of known length, then
// refuses the rest: the client sees the connection end early.
type halfWriter struct {
	http.ResponseWriter
	written int64
}

func (h *halfWriter) Write(p []byte) (int, error) {
	limit, _ := strconv.ParseInt(h.Header().Get("Content-Length"), 10, 64)
	if limit <= 0 || h.written >= limit/2 {
		return 0, errors.New("chaos: cut short")
	}
	p = p[:min(int64(len(p)), limit/2-h.written)]
	n, err := h.ResponseWriter.Write(p)
	h.written += int64(n)
	return n, err
}

// pushUpstream pushes a new image to the upstream, over one of six tags, so
// the cache's tags change under it.
func (s *soak) pushUpstream(i int) {
	img, err := random.Image(int64(64<<10+rand.IntN(448<<10)), 3)
	if err != nil {
		s.fail("random image: %v", err)
		return
	}
	repo, tag := fmt.Sprintf("lib/app-%d", i%6), fmt.Sprintf("t%d", i%3)
	ref, _ := name.ParseReference(s.up.Host()+"/"+repo+":"+tag, name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		s.fail("push to the upstream: %v", err)
		return
	}
	d, _ := img.Digest()
	s.mu.Lock()
	s.cached = append(s.cached, image{repo, tag}, image{repo, d.String()})
	s.mu.Unlock()
	s.outcome("upstream push")
}

// pushLoop pushes images of base and one layer of their own to repo with
// a real client, and pulls each back by digest.
func (s *soak) pushLoop(repo string, base v1.Layer) {
	for i := 0; s.running(); i++ {
		layer, err := random.Layer(int64(32<<10+rand.IntN(256<<10)), "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			s.fail("random layer: %v", err)
			return
		}
		img, err := mutate.AppendLayers(empty.Image, base, layer)
		if err != nil {
			s.fail("image: %v", err)
			return
		}
		tag := fmt.Sprintf("v%d", i%20)
		ref, _ := name.ParseReference(strings.TrimPrefix(s.reg, "http://")+"/"+repo+":"+tag, name.Insecure)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = remote.Write(ref, img, remote.WithContext(ctx))
		cancel()
		if err != nil {
			s.pushFailed(err)
			continue
		}
		s.outcome("local push")
		d, _ := img.Digest()
		s.mu.Lock()
		s.local = append(s.local, image{repo, d.String()})
		s.mu.Unlock()
		s.pullImage(repo, d.String(), "local")
	}
}

// pushFailed sorts a failed push: a refusal that says why (store full,
// too many sessions, a blob collected under it) is an outcome, a 500 or a
// client-side error is a failure.
func (s *soak) pushFailed(err error) {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode != http.StatusInternalServerError {
		s.outcome(fmt.Sprintf("local push refused %d", te.StatusCode))
		return
	}
	s.fail("push: %v", err)
}

// pullLocalLoop pulls pushed images back, and now and then a deleted one,
// which must be gone.
func (s *soak) pullLocalLoop() {
	for i := 0; s.running(); i++ {
		s.mu.Lock()
		var im, gone image
		if len(s.local) > 0 {
			im = s.local[rand.IntN(len(s.local))]
		}
		if len(s.deleted) > 0 && i%5 == 0 {
			gone = s.deleted[rand.IntN(len(s.deleted))]
		}
		s.mu.Unlock()
		switch {
		case gone.repo != "":
			st, body := s.do(http.MethodGet, "/v2/"+gone.repo+"/manifests/"+gone.ref, oci.AcceptManifests)
			if st != http.StatusNotFound {
				s.fail("deleted manifest %s@%s: %d %s, want 404", gone.repo, gone.ref, st, body)
			}
			s.outcome("deleted manifest 404")
		case im.repo == "":
			s.pullImage("private/soak-1", "v0", "local")
		default:
			s.pullImage(im.repo, im.ref, "local")
		}
	}
}

// pullCachedLoop pulls upstream images through the cache.
func (s *soak) pullCachedLoop() {
	for s.running() {
		s.mu.Lock()
		im := s.cached[rand.IntN(len(s.cached))]
		s.mu.Unlock()
		s.pullImage("hub/"+im.repo, im.ref, "cached")
	}
}

// deleteOldest deletes the oldest pushed image still listed.
func (s *soak) deleteOldest() {
	s.mu.Lock()
	if len(s.local) < 8 {
		s.mu.Unlock()
		return
	}
	im := s.local[0]
	s.local = s.local[1:]
	s.mu.Unlock()
	st, body := s.do(http.MethodDelete, "/v2/"+im.repo+"/manifests/"+im.ref, "")
	switch st {
	case http.StatusAccepted:
		s.outcome("local delete")
		s.mu.Lock()
		s.deleted = append(s.deleted, im)
		if len(s.deleted) > 32 {
			s.deleted = s.deleted[1:]
		}
		s.mu.Unlock()
	case http.StatusNotFound:
		s.outcome("local delete 404")
	default:
		s.fail("DELETE %s@%s: %d %s", im.repo, im.ref, st, body)
	}
}

// gc runs garbage collection through the admin API.
func (s *soak) gc() {
	resp, err := s.client.Post(s.admin+"/admin/v1/start-gc", "application/json", strings.NewReader("{}"))
	if err != nil {
		s.fail("start-gc: %v", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.fail("start-gc: %d %s", resp.StatusCode, body)
		return
	}
	s.outcome("gc")
}

// do sends a request to the registry and returns the status and body
// (status 0: the request failed).
func (s *soak) do(method, path, accept string) (int, []byte) {
	req, err := http.NewRequest(method, s.reg+path, nil)
	if err != nil {
		s.fail("%s %s: %v", method, path, err)
		return 0, nil
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.fail("%s %s: %v", method, path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestBytes+1))
	if err != nil {
		s.fail("%s %s: reading the body: %v", method, path, err)
		return 0, nil
	}
	if resp.StatusCode == http.StatusOK && method == http.MethodGet {
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != digestOf(body) {
			s.fail("GET %s: Docker-Content-Digest %s, the body hashes to %s", path, got, digestOf(body))
		}
	}
	return resp.StatusCode, body
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pullImage pulls repo:ref and everything it names, checking every digest.
// An image deleted, evicted or collected meanwhile may be gone (404); a
// failing upstream may answer 5xx other than 500.
func (s *soak) pullImage(repo, ref, kind string) {
	st, body := s.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, oci.AcceptManifests)
	if !s.answered(kind+" manifest", st, repo, ref, body) {
		return
	}
	if strings.HasPrefix(ref, "sha256:") && digestOf(body) != ref {
		s.fail("manifest %s@%s served with a body that hashes to %s", repo, ref, digestOf(body))
		return
	}
	var m oci.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		s.fail("manifest %s:%s is not JSON: %v", repo, ref, err)
		return
	}
	for _, d := range m.Refs() {
		if oci.IsManifest(d.MediaType) {
			s.pullImage(repo, d.Digest, kind)
			continue
		}
		s.getBlob(repo, d.Digest, kind)
	}
}

// answered sorts an answer: true for a 200 to check further.
func (s *soak) answered(what string, st int, repo, ref string, body []byte) bool {
	switch {
	case st == http.StatusOK:
		s.outcome(what + " 200")
		return true
	case st == 0:
	case st == http.StatusInternalServerError || st < 400:
		s.fail("%s %s:%s answered %d %s", what, repo, ref, st, body)
	default:
		s.outcome(fmt.Sprintf("%s %d", what, st))
	}
	return false
}

// getBlob downloads a blob and checks it against its digest. A stream cut
// short is the registry's signal that it could not complete the blob.
func (s *soak) getBlob(repo, d, kind string) {
	resp, err := s.client.Get(s.reg + "/v2/" + repo + "/blobs/" + d)
	if err != nil {
		s.fail("GET blob %s@%s: %v", repo, d, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		s.answered(kind+" blob", resp.StatusCode, repo, d, body)
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	switch {
	case err != nil:
		s.outcome(kind + " blob cut short")
	case "sha256:"+hex.EncodeToString(h.Sum(nil)) != d:
		s.fail("blob %s@%s: %d bytes served that hash to sha256:%x", repo, d, n, h.Sum(nil))
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		s.fail("blob %s@%s: Content-Length %d, %d bytes served", repo, d, resp.ContentLength, n)
	default:
		s.outcome(kind + " blob 200 verified")
	}
}
