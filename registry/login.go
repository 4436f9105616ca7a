package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Failed logins per address and user name: a few at once, then one per
// LoginFailureEvery. A client guessing one user's password from one
// address backs off that much, whatever its address's own rate.
const (
	LoginFailureBurst = 5
	LoginFailureEvery = 12 * time.Second
)

// Logins stands in front of every password check. A login first sets a
// token aside in its address's bucket and in the stricter bucket of its
// address and user name, so a client being refused costs no bcrypt. A
// failed login is charged to both; a good one to neither (its requests are
// charged to its principal).
type Logins struct {
	addrs    *Limiter // nil: no per-address limit
	failures *Limiter
}

// NewLogins returns the login limits over the address buckets of addrs
// (nil: only the failure buckets).
func NewLogins(addrs *Limiter) *Logins {
	return &Logins{addrs: addrs, failures: NewLimiter(1/LoginFailureEvery.Seconds(), LoginFailureBurst)}
}

// LoginHold is the tokens a login holds while its credentials are checked.
type LoginHold struct {
	done []func(now time.Time, failed bool)
}

// Hold sets the tokens of a login by user from addr aside, or returns a
// 429 TOOMANYREQUESTS error saying when to retry.
func (g *Logins) Hold(addr, user string, now time.Time) (*LoginHold, error) {
	h := &LoginHold{}
	if g.addrs != nil {
		done, err := g.addrs.Hold("ip:"+addr, now)
		if err != nil {
			return nil, err
		}
		h.done = append(h.done, done)
	}
	done, err := g.failures.Hold(failureKey(addr, user), now)
	if err != nil {
		h.Succeeded(now) // nothing was checked: charge nothing
		return nil, err
	}
	h.done = append(h.done, done)
	return h, nil
}

// maxKeptUser is the longest user name a failure bucket is named by as it
// is; far longer than any account's name.
const maxKeptUser = 64

// failureKey names the bucket of failed logins by user from addr. The
// client picks the user name, as long as the header limit (1 MB) allows,
// and a bucket is kept for minutes, so a longer name is kept as its hash:
// still one bucket per name, a few dozen bytes each.
func failureKey(addr, user string) string {
	if len(user) <= maxKeptUser {
		return addr + "\x00" + user
	}
	sum := sha256.Sum256([]byte(user))
	return addr + "\x01" + hex.EncodeToString(sum[:16])
}

// Succeeded ends the hold without charge: the credentials were good.
func (h *LoginHold) Succeeded(now time.Time) { h.end(now, false) }

// Failed ends the hold charging every bucket: the credentials were bad.
func (h *LoginHold) Failed(now time.Time) { h.end(now, true) }

func (h *LoginHold) end(now time.Time, failed bool) {
	for _, done := range h.done {
		done(now, failed)
	}
	h.done = nil
}
