package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"go.uber.org/zap"
)

// Bounds of an endpoint's health backoff after connection failures and
// 5xx answers: the first failure sets it aside for minDown, each further
// one doubles that, up to maxDown. An endpoint set aside is tried after
// the healthy ones, never skipped.
const (
	minDown = time.Second
	maxDown = time.Minute
)

// endpoint is one base URL of a rule's urls: its own transports (the
// token dance is per host), its own credential backoffs (a quota is per
// host and account), and its health.
type endpoint struct {
	url  string // scheme://host, as configured (no trailing slash)
	reg  name.Registry
	base http.RoundTripper
	pool *pool

	requests atomic.Int64

	mu         sync.Mutex
	transports map[string]repoTransport // by repository
	failures   int                      // consecutive connection failures and 5xx
	lastErr    string
	lastFail   time.Time
	lastOK     time.Time
	down       time.Time // tried after the healthy endpoints until then
}

// newEndpoint makes endpoint i of rule, reached through base.
func newEndpoint(rule Rule, i int, base http.RoundTripper) (*endpoint, error) {
	raw := rule.Endpoints()[i]
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", rule.Name, err)
	}
	var nameOpts []name.Option
	if u.Scheme == "http" {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", rule.Name, err)
	}
	creds, err := loadCredentials(rule, u.Host)
	if errors.Is(err, errNoDockerAuth) && i > 0 {
		creds, err = []*credential{{auth: authn.Anonymous}}, nil // a mirror the Docker config does not name
	}
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", rule.Name, err)
	}
	return &endpoint{
		url: u.Scheme + "://" + u.Host, reg: reg, pool: newPool(creds),
		base:       &schemeForcer{host: u.Host, scheme: u.Scheme, inner: newFence(rule, u, base)},
		transports: map[string]repoTransport{},
	}, nil
}

// order is the endpoints to try at now: the healthy ones in configuration
// order, then the ones set aside after failures.
func (u *Upstream) order(now time.Time) []*endpoint {
	if len(u.eps) == 1 {
		return u.eps
	}
	out := make([]*endpoint, 0, len(u.eps))
	var aside []*endpoint
	for _, ep := range u.eps {
		ep.mu.Lock()
		down := now.Before(ep.down)
		ep.mu.Unlock()
		if down {
			aside = append(aside, ep)
		} else {
			out = append(out, ep)
		}
	}
	return append(out, aside...)
}

// fallsOver reports whether err, from one endpoint, lets the next be
// tried: a connection failure, a timeout, a 5xx, a 429, a backoff or a
// 404 (a partial mirror answers 404 for what it has not cached).
func fallsOver(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound)
}

// sick reports whether err says the endpoint itself is unwell: it could not
// be reached or answered 5xx. A 404 or a 429 says nothing of its health
// (429s back off through the credential pool).
func sick(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 500
	}
	var be *BackoffError
	return errors.Is(err, ErrUnavailable) && !errors.As(err, &be)
}

// result records the outcome of a request to ep at now.
func (ep *endpoint) result(err error, now time.Time) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if err == nil || !sick(err) {
		if err == nil || errors.Is(err, ErrNotFound) {
			ep.failures, ep.down, ep.lastOK = 0, time.Time{}, now
		}
		return
	}
	ep.failures++
	ep.lastErr, ep.lastFail = err.Error(), now
	d := minDown << min(ep.failures-1, 6)
	ep.down = now.Add(min(d, maxDown))
}

// EndpointStatus is the health of one of a rule's endpoints.
type EndpointStatus struct {
	URL string
	// Healthy is false while the endpoint is set aside after failures:
	// the other endpoints are tried first until Down.
	Healthy bool
	Down    time.Time
	// Failures counts consecutive connection failures and 5xx answers;
	// LastError is the last of them.
	Failures  int
	LastError string
	LastFail  time.Time
	LastOK    time.Time
	// Backoff is when the endpoint may be asked again after a 429 or a
	// quota reported spent (zero: not backing off).
	Backoff  time.Time
	Requests int64
}

// Endpoints reports the health of the rule's endpoints, in configuration
// order.
func (u *Upstream) Endpoints() []EndpointStatus {
	now := u.now()
	out := make([]EndpointStatus, 0, len(u.eps))
	for _, ep := range u.eps {
		ep.mu.Lock()
		s := EndpointStatus{URL: ep.url, Healthy: !now.Before(ep.down), Failures: ep.failures,
			LastError: ep.lastErr, LastFail: ep.lastFail, LastOK: ep.lastOK, Requests: ep.requests.Load()}
		if !s.Healthy {
			s.Down = ep.down
		}
		ep.mu.Unlock()
		if until, off := ep.pool.backoff(http.MethodGet, now); off {
			s.Backoff = until
		}
		out = append(out, s)
	}
	return out
}

// do sends a request for path (/v2/...) to the rule's endpoints in turn
// (see order and fallsOver) until one answers, within ctx. When every
// endpoint fails, the error of one that was unavailable wins over a 404:
// what a partial mirror lacks may still be at an origin that is down.
func (u *Upstream) do(ctx context.Context, repo, method, path string, hdr http.Header) (*http.Response, error) {
	resp, _, err := u.doFirst(ctx, repo, method, path, hdr)
	return resp, err
}

// doFirst is do that also returns the endpoint that answered.
func (u *Upstream) doFirst(ctx context.Context, repo, method, path string, hdr http.Header) (*http.Response, *endpoint, error) {
	if u.Rule.Offline {
		return nil, nil, fmt.Errorf("upstream %s: %w", u.Rule.Name, ErrOffline)
	}
	var unavailable, last error
	for _, ep := range u.order(u.now()) {
		resp, err := u.doAt(ctx, ep, repo, method, ep.url+path, hdr)
		if err == nil {
			return resp, ep, nil
		}
		if !fallsOver(err) || ctx.Err() != nil {
			return nil, nil, err
		}
		if len(u.eps) > 1 {
			u.log.Debug("upstream endpoint failed; trying the next", zapEndpoint(ep), zapErr(err))
		}
		last = err
		if unavailable == nil && errors.Is(err, ErrUnavailable) {
			unavailable = err
		}
	}
	if unavailable != nil {
		return nil, nil, unavailable
	}
	return nil, nil, last
}

func zapEndpoint(ep *endpoint) zap.Field { return zap.String("endpoint", ep.url) }
func zapErr(err error) zap.Field         { return zap.Error(err) }
