package upstream

import (
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// credential is one account of an upstream's credential pool, with its own
// backoff: the upstream's quota (Docker Hub's pull limit, say) is usually
// per account, so one account that is told to slow down says nothing about
// the others.
type credential struct {
	user string // "" when anonymous or from a Docker config
	auth authn.Authenticator

	// Guarded by the pool's mu.
	hard  time.Time // a 429: no request before then
	quota time.Time // quota spent: only HEADs before then
}

// free reports whether c may send a request with method at now. A spent
// quota lets HEADs through: Berth revalidates tags with HEADs because
// Docker Hub does not count them against the pull limit.
func (c *credential) free(method string, now time.Time) bool {
	if now.Before(c.hard) {
		return false
	}
	return method == http.MethodHead || !now.Before(c.quota)
}

// release is when c may send a request with method again.
func (c *credential) release(method string) time.Time {
	if method == http.MethodHead || c.hard.After(c.quota) {
		return c.hard
	}
	return c.quota
}

// pool spreads an upstream's requests over its credentials.
//
// Every repository gets a transport of its own (the token dance is per
// repository), and a new transport takes the next credential round-robin,
// so repositories, and the pulls made from them, are spread evenly over
// the accounts. A rule without a credentials list is a pool of its one
// credential, anonymous or not.
//
// When the upstream answers 429, or reports its quota spent (RateLimit
// headers), for a request made with a credential, that credential alone
// backs off until the time the upstream gave. A repository whose
// credential is backing off takes the next free credential for its next
// request, with a new token dance. Only when every credential backs off
// does the upstream as a whole: requests then fail at once with ErrBackoff
// without contacting it, until the first credential is free again.
//
// A spent quota holds back only requests that count against it: HEADs
// still go through, so tags are still revalidated.
type pool struct {
	mu    sync.Mutex
	creds []*credential
	next  int
}

func newPool(creds []*credential) *pool { return &pool{creds: creds} }

func (p *pool) size() int { return len(p.creds) }

// usable reports whether c may send a request with method at now.
func (p *pool) usable(c *credential, method string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.free(method, now)
}

// pick returns the next credential, round-robin, that may send a request
// with method at now, or nil when every one is backing off.
func (p *pool) pick(method string, now time.Time) *credential {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.creds)
	for i := range n {
		j := (p.next + i) % n
		if c := p.creds[j]; c.free(method, now) {
			p.next = (j + 1) % n
			return c
		}
	}
	return nil
}

// backoff reports whether every credential is backing off for method at
// now, and if so until when (the earliest a credential is free again).
func (p *pool) backoff(method string, now time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backoffLocked(method, now)
}

func (p *pool) backoffLocked(method string, now time.Time) (time.Time, bool) {
	var until time.Time
	for _, c := range p.creds {
		if c.free(method, now) {
			return time.Time{}, false
		}
		if r := c.release(method); until.IsZero() || r.Before(until) {
			until = r
		}
	}
	return until, len(p.creds) > 0
}

// note records the signal s of a response to a request made with c. It
// reports whether c, and whether the whole upstream, started backing off
// (for pulls) because of it, and until when the upstream backs off.
func (p *pool) note(c *credential, s signal, now time.Time) (credStarted, upStarted bool, upUntil time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	credWas := !c.free(http.MethodGet, now)
	_, upWas := p.backoffLocked(http.MethodGet, now)
	if s.hard && s.until.After(c.hard) {
		c.hard = s.until
	}
	if !s.hard && s.until.After(c.quota) {
		c.quota = s.until
	}
	upUntil, upIs := p.backoffLocked(http.MethodGet, now)
	return !credWas && !c.free(http.MethodGet, now), !upWas && upIs, upUntil
}
