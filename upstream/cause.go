package upstream

import (
	"errors"
	"fmt"
	"net/url"
)

// unreachableError is an upstream that could not be asked: the connection,
// the TLS handshake or the wait for an answer failed. Its cause is kept for
// the message only; errors.Is sees ErrUnavailable (and ErrTimeout).
type unreachableError struct {
	upstream string
	timeout  bool
	cause    error
}

func (e *unreachableError) Error() string {
	if e.timeout {
		return fmt.Sprintf("upstream %s: %v: %v: %v", e.upstream, ErrUnavailable, ErrTimeout, e.cause)
	}
	return fmt.Sprintf("upstream %s: %v: %v", e.upstream, ErrUnavailable, e.cause)
}

func (e *unreachableError) Is(target error) bool {
	return target == ErrUnavailable || (e.timeout && target == ErrTimeout)
}

// Cause says in plain words why an upstream could not be asked, e.g.
// "dial tcp: lookup registry-1.docker.io: no such host", or why its answer
// was refused, or "" when err is not such a failure. The request's method and URL are left out: the caller
// names the operation.
func Cause(err error) string {
	var me *manifestError
	if errors.As(err, &me) {
		return fmt.Sprintf("its answer for %s is not a manifest Berth accepts: %v", me.what, me.reason)
	}
	var ue *unreachableError
	if !errors.As(err, &ue) {
		return ""
	}
	c := ue.cause
	var uerr *url.Error
	if errors.As(c, &uerr) {
		c = uerr.Err
	}
	return c.Error()
}
