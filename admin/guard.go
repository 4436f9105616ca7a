package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
)

// checkOrigin refuses requests a browser could have been tricked into
// sending: without a JSON content type (a cross-site form or fetch without
// preflight), or, on a loopback listener, naming a host that is not
// loopback (DNS rebinding).
func checkOrigin(r *http.Request) *Error {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
			Message: "send the request with Content-Type: application/json"}
	}
	return checkHost(r)
}

// HostGuard refuses, as the API does, a request to a loopback listener
// that names a host that is not loopback (DNS rebinding): for the other
// pages of the admin listener that a browser reads (the status page).
func HostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkHost(r); err != nil {
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a request to a loopback listener naming a host that
// is not loopback.
func checkHost(r *http.Request) *Error {
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	tcp, ok := la.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return &Error{Status: http.StatusForbidden, Code: CodeAccessDenied,
			Message: fmt.Sprintf("host %q is not loopback; the admin listener is bound to loopback", r.Host)}
	}
	return nil
}
