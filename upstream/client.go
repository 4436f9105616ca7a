package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"berth/internal/oci"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"go.uber.org/zap"
)

// ErrNotFound means the upstream answered 404 for the object.
var ErrNotFound = errors.New("not found upstream")

// ErrUnavailable means the upstream could not be asked: unreachable, timed
// out, a 5xx or a 429. Cached content may be served instead.
var ErrUnavailable = errors.New("upstream unavailable")

// ErrTimeout marks an ErrUnavailable that was a timeout.
var ErrTimeout = errors.New("upstream timed out")

// ErrOffline means the rule is offline: the upstream was not asked, and
// never is while the rule stays offline. Cached content may be served.
var ErrOffline = errors.New("upstream is offline")

// StatusError is an unexpected HTTP answer from an upstream.
type StatusError struct {
	Upstream string
	Status   int
	Body     string
	// RetryAfter is the upstream's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("upstream %s answered %d: %s", e.Upstream, e.Status, e.Body)
}

// Is lets errors.Is classify status errors.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnavailable:
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return false
}

// Upstream is a client of one upstream registry. It spares the upstream's
// quota: requests take a token from the rule's bucket, and while the
// upstream backs off (see pool) they fail at once with ErrBackoff.
type Upstream struct {
	Rule  Rule
	hub   bool         // Rule.IsDockerHub, decided once: names route by it
	eps   []*endpoint  // the rule's urls, in order of preference
	caps  []*Bandwidth // bandwidth caps blob downloads are paced by
	quota *quota
	log   *zap.Logger
	now   func() time.Time
}

// repoTransport is the authorised transport of a repository and the
// credential it was authorised with.
type repoTransport struct {
	rt   http.RoundTripper
	cred *credential
}

// Option changes how New makes a client.
type Option func(*Upstream)

// WithClock makes the client read the time from now instead of time.Now:
// backoffs, Retry-After dates and the request rate limit follow it.
func WithClock(now func() time.Time) Option { return func(u *Upstream) { u.now = now } }

// New returns a client for rule. base is the transport to the network
// (nil: a clone of http.DefaultTransport, which honours HTTPS_PROXY).
func New(rule Rule, base http.RoundTripper, log *zap.Logger, opts ...Option) (*Upstream, error) {
	rule = rule.WithDefaults()
	if len(rule.Endpoints()) == 0 {
		return nil, fmt.Errorf("upstream %s: no url", rule.Name)
	}
	if base == nil {
		var err error
		if base, err = DefaultTransport(rule); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = zap.NewNop()
	}
	up := &Upstream{Rule: rule, hub: rule.IsDockerHub(), log: log.With(zap.String("upstream", rule.Name)), quota: newQuota(rule), now: time.Now}
	for i := range rule.Endpoints() {
		ep, err := newEndpoint(rule, i, base)
		if err != nil {
			return nil, err
		}
		up.eps = append(up.eps, ep)
	}
	for _, o := range opts {
		o(up)
	}
	return up, nil
}

// DefaultTransport is the network transport of an upstream: a clone of
// http.DefaultTransport (which honours HTTPS_PROXY) that waits at most the
// rule's timeout for response headers, never connects to a link-local or
// cloud-metadata address (ErrBlockedAddress), and uses the rule's CA file,
// client certificate and insecureSkipVerify. It fails when those files
// cannot be read.
func DefaultTransport(rule Rule) (http.RoundTripper, error) {
	rule = rule.WithDefaults()
	tc, err := tlsConfig(rule)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", rule.Name, err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		t.TLSClientConfig = tc
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: dialControl}
	t.DialContext = d.DialContext
	if t.Proxy, err = proxyFunc(rule); err != nil {
		return nil, fmt.Errorf("upstream %s: %w", rule.Name, err)
	}
	t.ResponseHeaderTimeout = rule.Timeout
	t.MaxIdleConnsPerHost = 32
	return t, nil
}

// schemeForcer sends every request for the upstream's host with the
// configured scheme, so the client library never probes the other one.
type schemeForcer struct {
	host, scheme string
	inner        http.RoundTripper
}

func (s *schemeForcer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == s.host && r.URL.Scheme != s.scheme {
		r = r.Clone(r.Context())
		r.URL.Scheme = s.scheme
	}
	return s.inner.RoundTrip(r)
}

// maxTransports bounds the per-repository transports kept for reuse.
const maxTransports = 1024

// client returns an HTTP client authorised to send method for repo to ep,
// doing the token dance on first use, or again with the next free
// credential when the repository's credential backs off.
func (u *Upstream) client(ctx context.Context, ep *endpoint, repo, method string) (*http.Client, error) {
	now := u.now()
	ep.mu.Lock()
	t, ok := ep.transports[repo]
	ep.mu.Unlock()
	if ok && ep.pool.usable(t.cred, method, now) {
		return &http.Client{Transport: t.rt}, nil
	}
	cred := ep.pool.pick(method, now)
	if cred == nil {
		until, _ := ep.pool.backoff(method, now)
		return nil, u.throttle(until)
	}
	scope := "repository:" + repo + ":pull"
	if repo == catalogRepo {
		scope = "registry:catalog:*"
	}
	rt, err := transport.NewWithContext(ctx, ep.reg, cred.auth, &meter{u: u, ep: ep, cred: cred, inner: ep.base}, []string{scope})
	if err != nil {
		return nil, u.classify(err)
	}
	ep.mu.Lock()
	if len(ep.transports) >= maxTransports {
		clear(ep.transports)
	}
	ep.transports[repo] = repoTransport{rt: rt, cred: cred}
	ep.mu.Unlock()
	return &http.Client{Transport: rt}, nil
}

// classify wraps transport failures so callers can test them with errors.Is.
func (u *Upstream) classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		se := &StatusError{Upstream: u.Rule.Name, Status: te.StatusCode, Body: te.Error()}
		return se
	}
	var se *StatusError
	if errors.As(err, &se) || errors.Is(err, ErrHostNotAllowed) || errors.Is(err, ErrBlockedAddress) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &unreachableError{upstream: u.Rule.Name, timeout: errors.Is(err, context.DeadlineExceeded), cause: err}
}

// url is the path of one of repo's objects at every endpoint.
func (u *Upstream) url(repo, kind, ref string) string {
	return fmt.Sprintf("/v2/%s/%s/%s", repo, kind, ref)
}

// doAt sends a request to one endpoint once the quota allows it: not
// while the endpoint backs off, and after a token from the rule's bucket,
// waited for no later than ctx's deadline. It records the outcome in the
// endpoint's health.
func (u *Upstream) doAt(ctx context.Context, ep *endpoint, repo, method, target string, hdr http.Header) (*http.Response, error) {
	if until, off := ep.pool.backoff(method, u.now()); off {
		return nil, u.throttle(until)
	}
	if err := u.quota.wait(ctx, u.now); errors.Is(err, errWouldExceed) {
		u.quota.throttled.Add(1)
		return nil, fmt.Errorf("upstream %s: %w: %w: %w", u.Rule.Name, ErrUnavailable, ErrTimeout, err)
	} else if err != nil {
		return nil, u.classify(err)
	}
	resp, err := u.send(ctx, ep, repo, method, target, hdr)
	if !errors.Is(err, context.Canceled) {
		ep.result(err, u.now())
	}
	return resp, err
}

// send sends one request to ep and turns an answer of 300 or more into a
// StatusError.
func (u *Upstream) send(ctx context.Context, ep *endpoint, repo, method, target string, hdr http.Header) (*http.Response, error) {
	c, err := u.client(ctx, ep, repo, method)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, u.classify(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		se := &StatusError{Upstream: u.Rule.Name, Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), u.now()); ok {
			se.RetryAfter = ra
		}
		return nil, se
	}
	return resp, nil
}

// Descriptor describes a manifest at the upstream.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

// HeadManifest asks for a manifest's digest without downloading it. On
// Docker Hub a HEAD does not count against the pull quota.
func (u *Upstream) HeadManifest(ctx context.Context, repo, ref string) (Descriptor, error) {
	ctx, cancel := context.WithTimeout(ctx, u.Rule.Timeout)
	defer cancel()
	resp, err := u.do(ctx, repo, http.MethodHead, u.url(repo, "manifests", ref), http.Header{"Accept": {oci.AcceptManifests}})
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	d := Descriptor{MediaType: mediaType(resp.Header), Digest: resp.Header.Get("Docker-Content-Digest"), Size: resp.ContentLength}
	if d.Digest == "" {
		return Descriptor{}, fmt.Errorf("upstream %s: %w: HEAD %s:%s gave no Docker-Content-Digest", u.Rule.Name, ErrUnavailable, repo, ref)
	}
	return d, nil
}

// GetManifest downloads a manifest and checks that it is one: a body that
// does not parse as a manifest of an accepted media type fails with
// ErrInvalidManifest. For a tag the digest is the sha256 of the body; for
// a digest it is ref, and the store, which keeps nothing that does not hash
// to its digest, checks the body against it.
func (u *Upstream) GetManifest(ctx context.Context, repo, ref string) (Descriptor, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, u.Rule.Timeout)
	defer cancel()
	resp, err := u.do(ctx, repo, http.MethodGet, u.url(repo, "manifests", ref), http.Header{"Accept": {oci.AcceptManifests}})
	if err != nil {
		return Descriptor{}, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestBytes+1))
	if err != nil {
		return Descriptor{}, nil, u.classify(err)
	}
	what := "manifest " + repo + ":" + ref
	sum := sha256.Sum256(body)
	d := Descriptor{MediaType: mediaType(resp.Header), Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(body))}
	if strings.Contains(ref, ":") {
		d.Digest, what = ref, "manifest "+repo+"@"+ref
	}
	if len(body) > oci.MaxManifestBytes {
		return Descriptor{}, nil, fmt.Errorf("upstream %s: %s is larger than %d bytes", u.Rule.Name, what, oci.MaxManifestBytes)
	}
	if d.MediaType == "" {
		d.MediaType = sniffMediaType(body)
	}
	if err := u.checkManifest(what, d.MediaType, body, false); err != nil {
		return Descriptor{}, nil, err
	}
	return d, body, nil
}

// ListTags returns every tag of repo at the upstream, following pagination.
func (u *Upstream) ListTags(ctx context.Context, repo string) ([]string, error) {
	var body struct {
		Tags []string `json:"tags"`
	}
	return u.paged(ctx, repo, "/v2/"+repo+"/tags/list",
		&body, func() []string { t := body.Tags; body.Tags = nil; return t })
}

// paged reads a listing from path on, following its next links (100
// pages at most) on the endpoint that answered the first: each page
// decodes into body, and list gives its names.
func (u *Upstream) paged(ctx context.Context, repo, path string, body any, list func() []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*u.Rule.Timeout)
	defer cancel()
	resp, ep, err := u.doFirst(ctx, repo, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var all []string
	next := ep.url + path
	for page := 0; ; page++ {
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(body)
		resp.Body.Close()
		if err != nil {
			return nil, u.classify(err)
		}
		all = append(all, list()...)
		if next = nextLink(resp, next); next == "" || page == 99 {
			return all, nil
		}
		if resp, err = u.doAt(ctx, ep, repo, http.MethodGet, next, nil); err != nil {
			return nil, err
		}
	}
}

func nextLink(resp *http.Response, cur string) string {
	link := resp.Header.Get("Link")
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start < 0 || end <= start || !strings.Contains(link, `rel="next"`) {
		return ""
	}
	base, err := url.Parse(cur)
	if err != nil {
		return ""
	}
	ref, err := url.Parse(link[start+1 : end])
	if err != nil {
		return ""
	}
	return base.ResolveReference(ref).String()
}

func mediaType(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	mt = strings.TrimSpace(mt)
	if mt == "application/json" || mt == "text/plain" {
		return ""
	}
	return mt
}

// sniffMediaType reads the mediaType field of a manifest body.
func sniffMediaType(body []byte) string {
	var m struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(body, &m) == nil && m.MediaType != "" {
		return m.MediaType
	}
	if m.Manifests != nil {
		return oci.MediaTypeImageIndex
	}
	return oci.MediaTypeImageManifest
}

// GetReferrers fetches the referrers index of digest from the upstream's
// referrers API, falling back to the sha256-<hex> tag scheme when the
// upstream has no such API. An upstream that has neither gives an empty
// index.
func (u *Upstream) GetReferrers(ctx context.Context, repo, digest string) ([]byte, error) {
	tctx, cancel := context.WithTimeout(ctx, u.Rule.Timeout)
	defer cancel()
	resp, err := u.do(tctx, repo, http.MethodGet, u.url(repo, "referrers", digest), http.Header{"Accept": {oci.MediaTypeImageIndex}})
	if err == nil {
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestBytes+1))
		if err != nil {
			return nil, u.classify(err)
		}
		if len(body) > oci.MaxManifestBytes {
			return nil, fmt.Errorf("upstream %s: referrers index of %s is too large", u.Rule.Name, digest)
		}
		mt := mediaType(resp.Header)
		if mt == "" {
			mt = oci.MediaTypeImageIndex
		}
		if err := u.checkManifest("the referrers of "+digest, mt, body, true); err != nil {
			return nil, err
		}
		return body, nil
	}
	if !errors.Is(err, ErrNotFound) {
		var se *StatusError
		if !errors.As(err, &se) || se.Status >= 500 || se.Status == http.StatusTooManyRequests {
			return nil, err
		}
	}
	alg, hx, _ := strings.Cut(digest, ":")
	desc, body, err := u.GetManifest(ctx, repo, alg+"-"+hx)
	if errors.Is(err, ErrNotFound) {
		return []byte(oci.EmptyIndex), nil
	} else if err != nil {
		return nil, err
	}
	if !oci.IsIndex(desc.MediaType) {
		return nil, &manifestError{upstream: u.Rule.Name, what: "the referrers of " + digest,
			reason: fmt.Errorf("tag %s-%s is a %s, not an image index", alg, hx, desc.MediaType)}
	}
	return body, nil
}
