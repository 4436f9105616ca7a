package node

import (
	"net"
	"net/http"

	"go.uber.org/zap"

	"berth/config"
	"berth/registry"
)

// loopbackWrites is the registry's guard when auth is off and
// local.allowAnonymousRemoteWrites is not set: anyone may pull, but pushes
// and deletes are accepted only from clients on this host (loopback).
type loopbackWrites struct{}

func (loopbackWrites) Check(r *http.Request, req registry.AccessRequest) (string, error) {
	if req.Action != registry.ActionPush && req.Action != registry.ActionDelete {
		return "", nil
	}
	if ip := net.ParseIP(registry.ClientIP(r)); ip != nil && ip.IsLoopback() {
		return "", nil
	}
	return "", registry.Errorf(http.StatusForbidden, registry.CodeDenied,
		"auth is off, so this registry accepts %s only from its own host; the operator can turn auth on, "+
			"or set local.allowAnonymousRemoteWrites: true to accept anonymous writes from anywhere", req.Action)
}

// warnOpen logs, at start, what an unauthenticated client can reach.
func warnOpen(cfg config.Config, log *zap.Logger) {
	if cfg.Auth.Enabled {
		return
	}
	listeners := []string{cfg.Listen}
	if cfg.TLS.Listen != "" {
		listeners = append(listeners, cfg.TLS.Listen)
	}
	if cfg.Local.AllowAnonymousRemoteWrites {
		log.Warn("auth is off and local.allowAnonymousRemoteWrites is true: anyone who reaches these listeners may pull, push and delete",
			zap.Strings("listeners", listeners))
	} else {
		log.Warn("auth is off: anyone who reaches these listeners may pull; pushes and deletes are accepted from this host (loopback) only",
			zap.Strings("listeners", listeners))
	}
	if a := cfg.Admin.Listen; a != "" && !loopbackAddr(a) {
		log.Warn("auth is off and the admin API listens beyond this host: anyone who reaches it may change rules, policies and repositories",
			zap.String("admin", a))
	}
}

// loopbackAddr reports whether host:port binds to a loopback address only.
func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
