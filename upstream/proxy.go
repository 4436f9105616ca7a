package upstream

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// proxyFunc is the Proxy of a rule's transport: the environment's
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY, unless the rule names a proxy;
// then every request goes through it but for the hosts of the rule's
// noProxy. A proxy the operator names may live on a private or loopback
// address; one on a link-local or cloud-metadata address is refused here
// (and the dialer refuses to connect to one whatever its name resolves to).
func proxyFunc(rule Rule) (func(*http.Request) (*url.URL, error), error) {
	if rule.Proxy == "" {
		return http.ProxyFromEnvironment, nil
	}
	p, err := url.Parse(rule.Proxy)
	if err != nil || p.Host == "" {
		return nil, fmt.Errorf("proxy %q is not a URL such as http://proxy.example:3128", rule.Proxy)
	}
	if ip, err := netip.ParseAddr(p.Hostname()); err == nil && blocked(ip) {
		return nil, fmt.Errorf("proxy %s: %w", p.Host, ErrBlockedAddress)
	}
	direct := noProxy(rule.NoProxy)
	return func(r *http.Request) (*url.URL, error) {
		if direct.matches(r.URL.Hostname()) {
			return nil, nil
		}
		return p, nil
	}, nil
}

// noProxy is a rule's noProxy list: "*" (every host), "name", "*.domain"
// or ".domain" (every name below domain, and domain itself), an address
// or a CIDR.
type noProxy []string

func (n noProxy) matches(host string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	ip, ipErr := netip.ParseAddr(host)
	for _, e := range n {
		e = strings.ToLower(strings.TrimSpace(e))
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h // a port in an entry is ignored
		}
		switch {
		case e == "*" || e == host:
			return true
		case strings.HasPrefix(e, "*.") || strings.HasPrefix(e, "."):
			d := strings.TrimPrefix(strings.TrimPrefix(e, "*"), ".")
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		case ipErr == nil:
			if pfx, err := netip.ParsePrefix(e); err == nil && pfx.Contains(ip) {
				return true
			}
		}
	}
	return false
}
