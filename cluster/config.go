package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"

	"berth/internal/keyfile"

	"github.com/hashicorp/memberlist"
)

// SecretSize is the length of Config.Secret in bytes.
const SecretSize = keyfile.Size

var (
	// ErrInvalidConfig reports a Config that Start cannot use.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrInvalidSecret reports a secret file or value of the wrong shape.
	ErrInvalidSecret = errors.New("cluster: invalid secret")
)

// Config configures one node. The zero values of optional fields take the
// defaults documented on each field.
type Config struct {
	// NodeName is unique in the cluster; default: the hostname. Printable
	// ASCII without spaces, at most 128 bytes.
	NodeName string
	// GossipAddr is the host:port memberlist binds (TCP and UDP) and, unless
	// AdvertiseAddr is set, advertises. Default ":7946". Port 0 picks a free
	// port (see Self().GossipAddr).
	GossipAddr string
	// AdvertiseAddr optionally overrides the host:port advertised to peers.
	AdvertiseAddr string
	// PeerAddr is the host:port of this node's peer HTTP API, published in
	// the node metadata. Required. An empty or unspecified host (":5001",
	// "0.0.0.0:5001") is replaced by the advertised gossip IP.
	PeerAddr string
	// PeerTLS, when set, makes peer requests HTTPS with this client
	// configuration (a cluster CA as RootCAs and this node's certificate
	// for mutual TLS); the peer listener must then serve TLS.
	PeerTLS *tls.Config
	// Join lists host:port gossip addresses of peers. Joining is retried in
	// the background with backoff until one answers; afterwards seeds that
	// are not alive members are retried every rejoin interval (30 s), which
	// heals restarts and partitions.
	Join []string
	// Secret (SecretSize bytes) keys the gossip encryption and the peer-API
	// HMAC (two keys derived from it). Required: nodes without it cannot
	// join or call the peer API.
	Secret []byte
	// Replicas is the number of owners per key; default 2.
	Replicas int
	// ProbeInterval and GossipInterval override memberlist's LAN defaults
	// (1 s and 200 ms); meant for tests.
	ProbeInterval, GossipInterval time.Duration
}

// NodeStats is the storage summary a node publishes in its metadata.
type NodeStats struct {
	StoredBytes int64
	Blobs       int64
}

// Option refines Start.
type Option func(*options)

type options struct {
	stats         func() NodeStats
	statsInterval time.Duration
	version       string
	rejoin        time.Duration
	now           func() time.Time
	ownersChanged func()
	tune          func(*memberlist.Config) // tests only
}

// WithStats publishes fn's result in the node metadata, refreshed every
// interval (default 10 s when interval <= 0). fn must be fast and safe
// for concurrent use.
func WithStats(fn func() NodeStats, interval time.Duration) Option {
	return func(o *options) {
		o.stats = fn
		if interval > 0 {
			o.statsInterval = interval
		}
	}
}

// WithVersion publishes the software version in the node metadata.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithClock sets the clock the node signs peer requests with, checks
// their times against and reports to the other members (default
// time.Now). Tests use it to give a node a skewed clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithOwnersChanged calls fn after each change of membership that can
// move keys to other owners: a member joined, or died or left (Owners
// ranks the alive members only, so a change of a member's metadata moves
// nothing). fn runs on the loop that applies membership events, so it
// must return at once (kick a channel); it is never called concurrently
// with itself.
func WithOwnersChanged(fn func()) Option { return func(o *options) { o.ownersChanged = fn } }

// withRejoinInterval sets how often seeds are retried after the first join.
func withRejoinInterval(d time.Duration) Option { return func(o *options) { o.rejoin = d } }

// withMemberlist lets tests tune memberlist further.
func withMemberlist(fn func(*memberlist.Config)) Option { return func(o *options) { o.tune = fn } }

// LoadSecret reads a cluster secret file: 64 hex characters (surrounding
// whitespace ignored) or exactly 32 raw bytes (keyfile.Read).
func LoadSecret(path string) ([]byte, error) {
	key, err := keyfile.Read(path)
	if errors.Is(err, keyfile.ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster secret: %w", err)
	}
	return key, nil
}

// peerKeyLabel derives the peer API's HMAC key from the cluster secret.
const peerKeyLabel = "berth cluster peer v1"

// deriveKey derives an independent subkey so gossip encryption and peer
// HMAC never share key material.
func deriveKey(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// settings is a validated Config.
type settings struct {
	name               string
	bindHost           string
	bindPort           int
	advHost            string // "" when not overridden
	advPort            int
	peerHost, peerPort string // peerHost "" means: use the advertised IP
	join               []string
	gossipKey, peerKey []byte
	replicas           int
	probe, gossip      time.Duration
	peerTLS            *tls.Config
}

func validate(ctx context.Context, cfg Config) (settings, error) {
	s := settings{name: cfg.NodeName, replicas: cfg.Replicas, probe: cfg.ProbeInterval, gossip: cfg.GossipInterval, peerTLS: cfg.PeerTLS}
	bad := func(format string, args ...any) (settings, error) {
		return settings{}, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if s.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return settings{}, fmt.Errorf("%w: no NodeName and no hostname: %w", ErrInvalidConfig, err)
		}
		s.name = h
	}
	if !validName(s.name) {
		return bad("NodeName %q: want 1-128 printable ASCII characters without spaces", s.name)
	}
	if len(cfg.Secret) != SecretSize {
		return settings{}, fmt.Errorf("%w: %w: Secret must be %d bytes, got %d",
			ErrInvalidConfig, ErrInvalidSecret, SecretSize, len(cfg.Secret))
	}
	s.gossipKey = deriveKey(cfg.Secret, "berth cluster gossip v1")
	s.peerKey = deriveKey(cfg.Secret, peerKeyLabel)
	if s.replicas == 0 {
		s.replicas = 2
	}
	if s.replicas < 0 {
		return bad("Replicas %d < 0", s.replicas)
	}
	if s.probe < 0 || s.gossip < 0 {
		return bad("negative ProbeInterval or GossipInterval")
	}

	gossip := cfg.GossipAddr
	if gossip == "" {
		gossip = ":7946"
	}
	host, port, err := splitHostPort(gossip)
	if err != nil {
		return bad("GossipAddr: %v", err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if s.bindHost, err = resolveIP(ctx, host); err != nil {
		return bad("GossipAddr: %v", err)
	}
	s.bindPort = port
	if cfg.AdvertiseAddr != "" {
		host, port, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil || host == "" || port == 0 {
			return bad("AdvertiseAddr %q: want host:port with a host and a port", cfg.AdvertiseAddr)
		}
		if s.advHost, err = resolveIP(ctx, host); err != nil {
			return bad("AdvertiseAddr: %v", err)
		}
		s.advPort = port
	}

	host, port, err = splitHostPort(cfg.PeerAddr)
	if err != nil || port == 0 {
		return bad("PeerAddr %q: want host:port", cfg.PeerAddr)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		s.peerHost = host
	}
	s.peerPort = strconv.Itoa(port)
	for _, j := range cfg.Join {
		if _, _, err := splitHostPort(j); err != nil {
			return bad("Join %q: %v", j, err)
		}
		s.join = append(s.join, j)
	}
	return s, nil
}

// checkMetaSize fails when the metadata could outgrow memberlist's limit.
func checkMetaSize(peerAddr, version string) error {
	worst := nodeMeta{PeerAddr: peerAddr, Version: version, StoredBytes: math.MinInt64, Blobs: math.MinInt64, Leaving: true}
	if n := len(worst.encode()); n > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: PeerAddr and version take %d bytes of metadata, limit %d",
			ErrInvalidConfig, n, memberlist.MetaMaxSize)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// resolveIP returns host as an IP string, looking names up (memberlist
// wants IPs). IPv4 answers are preferred.
func resolveIP(ctx context.Context, host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return a.IP.String(), nil
		}
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("resolve %q: no addresses", host)
	}
	return addrs[0].IP.String(), nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
