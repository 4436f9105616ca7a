package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"berth/cluster"
	"berth/internal/oci"
	"berth/registry"
	"berth/upstream"
)

// peerClient is the one client of another node's peer API: it asks one
// member for a manifest or a blob of one upstream repository with the
// registry API itself, over the cluster's signed client (with mutual TLS
// when the cluster has it).
type peerClient struct {
	http     *http.Client
	member   cluster.Member
	base     string // the member's peer API URL
	up, repo string // upstream rule name and repository there
	// header bounds the wait for an answer's headers.
	header time.Duration
}

func (p *Proxy) peerClient(m cluster.Member, t upstream.Target) peerClient {
	return peerClient{http: p.opts.Cluster.PeerClient(), member: m, base: p.opts.Cluster.PeerURL(m),
		up: t.Upstream.Rule.Name, repo: t.Repo, header: 2 * t.Upstream.Rule.Timeout}
}

// do sends method for <kind>/<ref> of the repository. An answer other
// than 200 or 206 is an error; a manifest's 404 MANIFEST_UNKNOWN is the
// upstream's, upstream.ErrNotFound.
func (c peerClient) do(ctx context.Context, method, kind, ref string, hdr http.Header) (*http.Response, error) {
	u := c.base + "/v2/" + c.up + "/" + c.repo + "/" + kind + "/" + url.PathEscape(ref)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", c.member.Name, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && kind == "manifests" {
		var eb struct{ Errors []struct{ Code string } }
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(body, &eb) == nil && len(eb.Errors) > 0 && eb.Errors[0].Code == registry.CodeManifestUnknown {
			return nil, fmt.Errorf("peer %s: %w", c.member.Name, upstream.ErrNotFound)
		}
	}
	return nil, fmt.Errorf("peer %s answered %d for %s %s", c.member.Name, resp.StatusCode, kind, ref)
}

// manifest fetches a manifest (ref is a tag or a digest) and verifies its
// digest.
func (c peerClient) manifest(ctx context.Context, ref string) (mediaType string, body []byte, digest string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.header)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, "manifests", ref, http.Header{"Accept": {oci.AcceptManifests}})
	if err != nil {
		return "", nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestBytes+1))
	if err != nil {
		return "", nil, "", fmt.Errorf("peer %s: %w", c.member.Name, err)
	}
	d := resp.Header.Get("Docker-Content-Digest")
	if registry.IsDigest(ref) {
		d = ref
	}
	dg, err := registry.ParseDigest(d)
	if err != nil || !dg.Verify(body) {
		return "", nil, "", fmt.Errorf("peer %s sent a manifest that does not match %q", c.member.Name, d)
	}
	return resp.Header.Get("Content-Type"), body, d, nil
}

// blobHeader is the header of a blob request; storeOnly asks for a copy
// the peer already holds, never a fill.
func blobHeader(storeOnly bool) http.Header {
	hdr := http.Header{}
	if storeOnly {
		hdr.Set(headerStoreOnly, "1")
	}
	return hdr
}

// headBlob returns a blob's size.
func (c peerClient) headBlob(ctx context.Context, digest string, storeOnly bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.header)
	defer cancel()
	resp, err := c.do(ctx, http.MethodHead, "blobs", digest, blobHeader(storeOnly))
	if err != nil {
		return -1, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// openBlob reads a blob from off to last (last < 0: to the end) and
// returns the whole blob's size. The stream is cut when no byte comes for
// idle: a peer partitioned away mid-stream is then replaced by the next
// source.
func (c peerClient) openBlob(ctx context.Context, digest string, off, last int64, storeOnly bool, idle time.Duration) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	hdr := blobHeader(storeOnly)
	if r := upstream.RangeHeader(off, last); r != "" {
		hdr.Set("Range", r)
	}
	timer := time.AfterFunc(c.header, cancel)
	resp, err := c.do(ctx, http.MethodGet, "blobs", digest, hdr)
	if err != nil {
		timer.Stop()
		cancel()
		return nil, -1, err
	}
	size := resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		size = upstream.RangeTotal(resp.Header)
	}
	timer.Reset(idle)
	return &idleBody{ReadCloser: resp.Body, timer: timer, idle: idle, cancel: cancel}, size, nil
}

// idleBody cuts a peer stream that makes no progress for idle: a peer
// partitioned away mid-stream is then replaced by the next source.
type idleBody struct {
	io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	cancel context.CancelFunc
	closed atomic.Bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}
