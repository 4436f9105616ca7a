package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrHostNotAllowed means an upstream sent Berth (by a redirect or a token
// realm) to a host the rule does not allow, or asked it to send the rule's
// credentials where they may not go. Nothing was sent there.
var ErrHostNotAllowed = errors.New("host not allowed for this upstream")

// ErrBlockedAddress means a connection to a link-local or cloud-metadata
// address was refused. Berth never contacts those, whatever the name that
// resolved to them.
var ErrBlockedAddress = errors.New("address is link-local or a cloud metadata service")

// knownRegistry is a major public registry with the hosts it sends clients
// to: its token service, and where it redirects downloads.
type knownRegistry struct {
	hosts  []string // the registry itself
	tokens []string // its token realms: may receive the rule's credentials
	blobs  []string // where it redirects downloads: never get credentials
}

// wellKnown is the one list of the major registries' hosts. Host patterns
// are a host name ("auth.docker.io"), which matches on any port, or
// "*.domain", which matches every name below domain.
//
// A rule may always be sent to every host listed here (they are public
// services, not internal ones); its credentials go only to the token hosts
// of the registry its URL names. Anything else needs the rule's
// allowedHosts.
var wellKnown = []knownRegistry{
	{ // Docker Hub
		hosts:  []string{"docker.io", "registry-1.docker.io", "index.docker.io", "registry.docker.io"},
		tokens: []string{"auth.docker.io"},
		blobs:  []string{"production.cloudflare.docker.com", "*.cloudflare.docker.com", "*.r2.cloudflarestorage.com"},
	},
	{ // GitHub Container Registry
		hosts:  []string{"ghcr.io"},
		tokens: []string{"ghcr.io"},
		blobs:  []string{"pkg-containers.githubusercontent.com"},
	},
	{ // Quay
		hosts:  []string{"quay.io"},
		tokens: []string{"quay.io"},
		blobs:  []string{"*.quay.io", "quayio-production-s3.s3.amazonaws.com"},
	},
	{ // registry.k8s.io, which redirects to Artifact Registry and S3 mirrors
		hosts:  []string{"registry.k8s.io", "k8s.gcr.io"},
		tokens: []string{"registry.k8s.io", "k8s.gcr.io"},
		blobs:  []string{"*.pkg.dev", "*.amazonaws.com"},
	},
	{ // Amazon ECR Public
		hosts:  []string{"public.ecr.aws"},
		tokens: []string{"public.ecr.aws"},
		blobs:  []string{"*.cloudfront.net"},
	},
	{ // Google Container Registry and Artifact Registry
		hosts:  []string{"gcr.io", "*.gcr.io", "*.pkg.dev"},
		tokens: []string{"gcr.io", "*.gcr.io", "*.pkg.dev"},
		blobs:  []string{"storage.googleapis.com", "*.storage.googleapis.com"},
	},
}

// hostSet is a list of host patterns: "name" (any port), "name:port", or
// "*.domain" (any name below domain, any port).
type hostSet []string

// allows reports whether hostport (host[:port] of a URL) matches a pattern.
func (s hostSet) allows(hostport string) bool {
	name, port := splitHostPort(hostport)
	for _, p := range s {
		p = strings.ToLower(p)
		pname, pport := splitHostPort(p)
		if pport != "" && pport != port {
			continue
		}
		if suffix, ok := strings.CutPrefix(pname, "*."); ok {
			if strings.HasSuffix(name, "."+suffix) {
				return true
			}
			continue
		}
		if pname == name {
			return true
		}
	}
	return false
}

func splitHostPort(hostport string) (name, port string) {
	hostport = strings.ToLower(hostport)
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.Trim(hostport, "[]"), ""
}

// fence stands between an upstream's client and the network. Every
// request, the token dance's included, and every redirect hop passes it:
//
//   - a request goes only to the hosts of the rule's urls, a well-known
//     registry host, or the rule's allowedHosts;
//   - a request with credentials (an Authorization header) goes only to
//     the hosts of the rule's urls, their registries' token hosts or
//     allowedHosts, and over plain http only when the endpoint's URL is
//     http;
//   - a challenge whose token realm lies outside those credential hosts is
//     refused before the client library sends anything to it.
type fence struct {
	rule   string
	self   string // the rule's host:port
	scheme string // the rule's scheme
	reach  hostSet
	creds  hostSet
	inner  http.RoundTripper
}

func newFence(rule Rule, u *url.URL, inner http.RoundTripper) *fence {
	self := canonicalHost(u.Scheme, u.Host)
	creds := hostSet{self}
	hosts := []string{u.Host}
	for _, raw := range rule.Endpoints() { // every endpoint of the rule is its own
		if e, err := url.Parse(raw); err == nil && e.Host != "" {
			creds = append(creds, canonicalHost(e.Scheme, e.Host))
			hosts = append(hosts, e.Host)
		}
	}
	creds = append(creds, rule.AllowedHosts...)
	reach := append(hostSet{}, creds...)
	for _, k := range wellKnown {
		for _, h := range hosts {
			if hostSet(k.hosts).allows(h) {
				creds = append(creds, k.tokens...)
				break
			}
		}
		reach = append(reach, k.hosts...)
		reach = append(reach, k.tokens...)
		reach = append(reach, k.blobs...)
	}
	return &fence{rule: rule.Name, self: self, scheme: u.Scheme, reach: reach, creds: creds, inner: inner}
}

// canonicalHost is host with the scheme's default port made explicit.
func canonicalHost(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return strings.ToLower(host)
	}
	port := "443"
	if scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(strings.Trim(strings.ToLower(host), "[]"), port)
}

func (f *fence) RoundTrip(r *http.Request) (*http.Response, error) {
	host := canonicalHost(r.URL.Scheme, r.URL.Host)
	// The dialer checks resolved addresses; this catches an address
	// literal sent through an HTTP proxy, which Berth does not dial.
	if ip, err := netip.ParseAddr(r.URL.Hostname()); err == nil && blocked(ip) {
		return nil, fmt.Errorf("upstream %s: %s: %w", f.rule, host, ErrBlockedAddress)
	}
	if !f.reach.allows(host) {
		return nil, f.refuse("send a request to %s", host)
	}
	if r.Header.Get("Authorization") != "" {
		if !f.creds.allows(host) {
			return nil, f.refuse("send its credentials to %s", host)
		}
		if r.URL.Scheme == "http" && f.scheme != "http" {
			return nil, f.refuse("send its credentials over plain http to %s", host)
		}
	}
	resp, err := f.inner.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if err := f.checkRealms(resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// checkRealms refuses a challenge naming a token realm the rule's
// credentials may not go to: the client library would send them there.
func (f *fence) checkRealms(resp *http.Response) error {
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		realm := challengeRealm(h)
		if realm == "" {
			continue
		}
		u, err := url.Parse(realm)
		if err != nil || u.Host == "" {
			return f.refuse("use the token realm %q, which is not a URL", realm)
		}
		if u.Scheme == "http" && f.scheme != "http" {
			return f.refuse("send its credentials over plain http to the token realm %s", realm)
		}
		if !f.creds.allows(canonicalHost(u.Scheme, u.Host)) {
			return f.refuse("send its credentials to the token realm %s", realm)
		}
	}
	return nil
}

func (f *fence) refuse(format string, args ...any) error {
	return fmt.Errorf("upstream %s asked Berth to %s: %w; add the host to the rule's allowedHosts if it is trusted",
		f.rule, fmt.Sprintf(format, args...), ErrHostNotAllowed)
}

// challengeRealm is the realm parameter of a Bearer challenge, or "".
func challengeRealm(h string) string {
	scheme, params, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	for params != "" {
		var kv string
		kv, params = nextParam(params)
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(strings.TrimSpace(k), "realm") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// nextParam splits the first comma-separated parameter off s, keeping
// commas inside quotes.
func nextParam(s string) (param, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// blockedPrefixes are the addresses Berth never connects to: link-local
// ranges, where the cloud metadata services live, and the metadata
// services outside them. Loopback and private ranges stay reachable: an
// in-house upstream may well live there.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),     // IPv4 link-local, AWS/GCP/Azure/OCI metadata
	netip.MustParsePrefix("fe80::/10"),          // IPv6 link-local
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure wire server
}

// dialControl refuses connections to blocked addresses. It runs after name
// resolution, so a host name that resolves to one is refused too.
func dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, err)
	}
	if blocked(ap.Addr()) {
		return fmt.Errorf("dial %s %s: %w", network, address, ErrBlockedAddress)
	}
	return nil
}

func blocked(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
