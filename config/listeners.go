package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
)

// Admin is the operator's listener: metrics, health, profiles and the
// admin API. It is bound to loopback by default.
type Admin struct {
	// Listen is host:port; empty turns the admin listener off.
	Listen string `yaml:"listen"`
	// Pprof exposes net/http/pprof under /debug/pprof/.
	Pprof bool `yaml:"pprof"`
	// AllowUnauthenticatedRemote lets the admin listener listen beyond
	// loopback while auth is off, when anyone who reaches it may delete
	// repositories. Without it such a config is refused.
	AllowUnauthenticatedRemote bool `yaml:"allowUnauthenticatedRemote"`
}

// TLS serves the registry API over HTTPS too. The plain listener stays
// (loopback clients, tests); the certificate is reloaded on SIGHUP without
// dropping connections.
type TLS struct {
	// Listen is host:port of the HTTPS listener; empty: no HTTPS.
	Listen   string `yaml:"listen"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Cluster joins this node to others at the site: they share one
// content-addressed store, each digest and tag has owner nodes, and a miss
// costs one upstream fetch per cluster. Empty gossipAddr: a single node.
type Cluster struct {
	NodeName      string   `yaml:"nodeName"`
	GossipAddr    string   `yaml:"gossipAddr"`    // memberlist bind address (TCP and UDP)
	AdvertiseAddr string   `yaml:"advertiseAddr"` // if different from gossipAddr
	PeerAddr      string   `yaml:"peerAddr"`      // the peer HTTP API
	Join          []string `yaml:"join"`
	SecretFile    string   `yaml:"secretFile"` // 32 bytes (64 hex chars): gossip encryption and peer authentication
	Replicas      int      `yaml:"replicas"`
	// TLS makes the peer API mutual TLS with a cluster CA, on top of the
	// signed requests: each node serves and calls with its certificate
	// (valid for its peerAddr host) and trusts only the CA.
	TLS PeerTLS `yaml:"tls"`
}

// PeerTLS is the peer API's mutual TLS.
type PeerTLS struct {
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Audit configures the audit log.
type Audit struct {
	// Path of the JSON-lines file; empty means <dataDir>/audit/audit.log.
	Path string `yaml:"path"`
	// Disabled turns the audit log off.
	Disabled bool `yaml:"disabled"`
	// MaxBytes rotates the file past this size; Keep rotated files are kept.
	MaxBytes int64 `yaml:"maxBytes"`
	Keep     int   `yaml:"keep"`
}

// File is the audit log's path for a node whose data is in dataDir.
func (c Audit) File(dataDir string) string {
	if c.Path != "" {
		return c.Path
	}
	return filepath.Join(dataDir, "audit", "audit.log")
}

// Log selects the log format and level.
type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// Enabled reports whether the peer API uses mutual TLS.
func (c PeerTLS) Enabled() bool { return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" }

// Enabled reports whether the node joins a cluster.
func (c Cluster) Enabled() bool { return c.GossipAddr != "" }

func (c Cluster) validate() []error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	for _, a := range []struct{ key, addr string }{{"cluster.gossipAddr", c.GossipAddr}, {"cluster.peerAddr", c.PeerAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", a.key, a.addr))
		}
	}
	if c.SecretFile == "" {
		errs = append(errs, errors.New("cluster.secretFile: required; nodes without the secret cannot join"))
	}
	if c.TLS.Enabled() && (c.TLS.CAFile == "" || c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("cluster.tls.caFile, cluster.tls.certFile and cluster.tls.keyFile: give all three, or none"))
	}
	if c.Replicas < 0 {
		errs = append(errs, errors.New("cluster.replicas: must not be negative"))
	}
	return errs
}

func (c TLS) validate() []error {
	if c.Listen == "" {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("tls.listen: %q is not host:port (%v)", c.Listen, err))
	}
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, errors.New("tls.certFile and tls.keyFile: required with tls.listen"))
	}
	return errs
}

func (c Admin) validate(authOn bool) []error {
	if c.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return []error{fmt.Errorf("admin.listen: %q is not host:port (%v)", c.Listen, err)}
	}
	if !authOn && !c.AllowUnauthenticatedRemote && !IsLoopback(host) {
		return []error{fmt.Errorf("admin.listen: %q is reachable beyond this host while auth is off, so anyone "+
			"who reaches it could delete repositories; listen on 127.0.0.1, turn auth on, or set "+
			"admin.allowUnauthenticatedRemote: true if a firewall guards it", c.Listen)}
	}
	return nil
}

// IsLoopback says whether a listen host binds loopback only: localhost or
// a loopback address. An empty host (every address) is not.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Audit) validate() []error {
	if c.MaxBytes < 0 || c.Keep < 0 {
		return []error{errors.New("audit.maxBytes and audit.keep: must not be negative")}
	}
	return nil
}

func (c Log) validate() []error {
	var errs []error
	switch c.Format {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not json or console", c.Format))
	}
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Level))
	}
	return errs
}
