package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"berth/cluster"
	"berth/upstream"
)

// source is where a fill reads a blob's bytes: the upstream, or a peer
// that owns the digest.
type source interface {
	// open reads the blob from off to last (last < 0: to the end) and
	// returns the whole blob's size.
	open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error)
	// head returns the blob's size without reading it.
	head(ctx context.Context) (int64, error)
	String() string
	isPeer() bool
}

type upstreamSource struct {
	up           *upstream.Upstream
	repo, digest string
}

func (s upstreamSource) open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error) {
	return s.up.GetBlobRange(ctx, s.repo, s.digest, off, last)
}
func (s upstreamSource) head(ctx context.Context) (int64, error) {
	return s.up.HeadBlob(ctx, s.repo, s.digest)
}
func (s upstreamSource) String() string { return "upstream " + s.up.Rule.Name }
func (s upstreamSource) isPeer() bool   { return false }

// peerSource reads from another node's peer API, which serves the blob
// from its store or its own fill and never forwards the request again.
type peerSource struct {
	client       *http.Client
	member       cluster.Member
	base         string // the member's peer API URL
	up, repo     string // upstream rule name and repository there
	digest       string
	idle, header time.Duration
	// storeOnly asks for a copy the peer already holds, never a fill.
	storeOnly bool
}

func (s peerSource) url(kind, ref string) string {
	return s.base + "/v2/" + s.up + "/" + s.repo + "/" + kind + "/" + url.PathEscape(ref)
}

func (s peerSource) String() string { return "peer " + s.member.Name }
func (s peerSource) isPeer() bool   { return true }

func (s peerSource) do(ctx context.Context, method string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.url("blobs", s.digest), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if s.storeOnly {
		req.Header.Set(headerStoreOnly, "1")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", s.member.Name, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("peer %s answered %d for blob %s", s.member.Name, resp.StatusCode, s.digest)
	}
	return resp, nil
}

func (s peerSource) head(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.header)
	defer cancel()
	resp, err := s.do(ctx, http.MethodHead, nil)
	if err != nil {
		return -1, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

func (s peerSource) open(ctx context.Context, off, last int64) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	hdr := http.Header{}
	if off > 0 {
		r := fmt.Sprintf("bytes=%d-", off)
		if last >= off {
			r += strconv.FormatInt(last, 10)
		}
		hdr.Set("Range", r)
	}
	timer := time.AfterFunc(s.header, cancel)
	resp, err := s.do(ctx, http.MethodGet, hdr)
	if err != nil {
		timer.Stop()
		cancel()
		return nil, -1, err
	}
	size := resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		size = -1
		if _, total, ok := strings.Cut(resp.Header.Get("Content-Range"), "/"); ok {
			size, _ = strconv.ParseInt(total, 10, 64)
		}
	}
	timer.Reset(s.idle)
	return &idleBody{ReadCloser: resp.Body, timer: timer, idle: s.idle, cancel: cancel}, size, nil
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

// sources lists where a fill of digest d should read from. A node that is
// not the digest's first owner asks the owners ahead of it, in order, then
// the upstream. The first owner asks the other owners for a copy they
// already hold (store only: a replica that survived while this node's
// store was replaced) before the upstream. A request from a peer goes to
// the upstream only, never to another peer. So a miss costs one upstream
// fetch per cluster, and availability beats dedupe when owners fail.
func (p *Proxy) sources(ctx context.Context, t upstream.Target, d string) []source {
	up := upstreamSource{up: t.Upstream, repo: t.Repo, digest: d}
	if p.opts.Cluster == nil {
		return []source{up}
	}
	if _, fromPeer := cluster.FromPeer(ctx); fromPeer {
		return []source{up}
	}
	var out []source
	self := false
	for i, m := range p.opts.Cluster.Owners(d) {
		if m.Self {
			self = true
			if i > 0 {
				break // not the first owner: the owners ahead of it are enough
			}
			continue
		}
		if m.PeerAddr == "" {
			continue
		}
		out = append(out, peerSource{client: p.opts.Cluster.PeerClient(), member: m, base: p.opts.Cluster.PeerURL(m),
			up: t.Upstream.Rule.Name, repo: t.Repo, digest: d, storeOnly: self,
			idle: t.Upstream.Rule.IdleTimeout, header: 2 * t.Upstream.Rule.Timeout})
	}
	return append(out, up)
}
