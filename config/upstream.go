package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Upstream is one configured upstream registry: a rule of the upstreams
// list, or one created through the admin API.
type Upstream struct {
	// Name identifies the rule in logs, metrics and the store.
	Name string `yaml:"name"`
	// Prefix routes /v2/<prefix>/<name>/... here, with the prefix stripped.
	Prefix string `yaml:"prefix"`
	// Registry is the registry host matched against containerd's ?ns=.
	Registry string `yaml:"registry"`
	// URL is the upstream's base URL, https or http: shorthand for urls
	// with one entry. With urls, it is the first entry.
	URL string `yaml:"url"`
	// URLs are the upstream's endpoints in order of preference: a
	// connection failure, 5xx, 429 or 404 on one tries the next.
	URLs []string `yaml:"urls"`
	// Proxy is the HTTP(S) proxy every endpoint is reached through,
	// instead of the environment's HTTPS_PROXY/HTTP_PROXY. NoProxy lists
	// hosts reached directly all the same: "name", "*.domain" or ".domain",
	// an address or a CIDR.
	Proxy   string   `yaml:"proxy"`
	NoProxy []string `yaml:"noProxy"`
	// UpstreamBandwidth caps, in bytes per second, what this rule's fills
	// draw from its upstream together (0: no cap); they share it evenly.
	UpstreamBandwidth int64 `yaml:"upstreamBandwidth"`
	// Default takes names that no other rule claims.
	Default bool `yaml:"default"`
	// TTL is how long a tag is served without asking the upstream.
	TTL time.Duration `yaml:"ttl"`
	// Timeout bounds manifest requests and the wait for a blob's first byte.
	Timeout time.Duration `yaml:"timeout"`
	// IdleTimeout cuts a blob stream that makes no progress for this long.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// Username and PasswordFile give Basic credentials for the token dance.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
	// DockerConfig is a Docker config.json whose "auths" entry for the
	// upstream's host gives the credentials.
	DockerConfig string `yaml:"dockerConfig"`
	// Credentials is a pool of accounts to spread pulls over, instead of
	// the single username/passwordFile or dockerConfig.
	Credentials []Credential `yaml:"credentials"`
	// RequestsPerSecond caps the requests Berth sends to the upstream with
	// a token bucket of Burst tokens (0: no cap). Burst defaults to
	// RequestsPerSecond rounded up.
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	Burst             int     `yaml:"burst"`
	// AllowedHosts are further hosts the upstream may send Berth to by a
	// redirect or a token realm, and that may receive its credentials:
	// "name" (any port), "name:port" or "*.domain".
	AllowedHosts []string `yaml:"allowedHosts"`
	// CAFile is a PEM file of CA certificates the upstream's certificate
	// may chain to, besides the system's roots (an in-house registry).
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a PEM client certificate and its key, sent
	// to an upstream that asks for one (mutual TLS).
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// InsecureSkipVerify accepts any certificate from the upstream. For
	// tests only; Berth warns at start.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
	// Offline never contacts the upstream: cached tags are served past
	// their TTL and a miss fails at once. The top-level offline key sets
	// it for every rule.
	Offline bool `yaml:"offline"`
	// TagPolicies give matching tags their own TTL, first match first;
	// other tags keep TTL (see TagFreshness).
	TagPolicies []TagPolicy `yaml:"tagPolicies"`
	// OnUpstreamDelete is forget (default) or keep: what a cached tag
	// becomes when the upstream answers 404 for it.
	OnUpstreamDelete string `yaml:"onUpstreamDelete"`
}

// Credential is one account of a rule's credential pool.
type Credential struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
}

// Defaults used when an upstream leaves a field empty.
const (
	DefaultTTL         = 24 * time.Hour
	DefaultTimeout     = 3 * time.Second
	DefaultIdleTimeout = 30 * time.Second
)

// WithDefaults returns r with empty durations filled in.
func (r Upstream) WithDefaults() Upstream {
	if r.URL == "" && len(r.URLs) > 0 {
		r.URL = r.URLs[0]
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.IdleTimeout == 0 {
		r.IdleTimeout = DefaultIdleTimeout
	}
	if r.RequestsPerSecond > 0 && r.Burst == 0 {
		r.Burst = max(1, int(math.Ceil(r.RequestsPerSecond)))
	}
	return r
}

// Endpoints are the rule's base URLs in order of preference: urls, or
// the one url.
func (r Upstream) Endpoints() []string {
	if len(r.URLs) > 0 {
		return r.URLs
	}
	if r.URL == "" {
		return nil
	}
	return []string{r.URL}
}

// Host is the host[:port] of the rule's first URL.
func (r Upstream) Host() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// IsDockerHub reports whether the rule mirrors Docker Hub, whose official
// images live under library/.
func (r Upstream) IsDockerHub() bool {
	host := strings.ToLower(r.Host())
	return strings.EqualFold(r.Registry, "docker.io") || host == "registry-1.docker.io" || host == "index.docker.io"
}

// ValidateUpstreams reports every problem with the rule set at once.
func ValidateUpstreams(rules []Upstream) error { return errors.Join(upstreamProblems(rules)...) }

func upstreamProblems(rules []Upstream) []error {
	var errs []error
	names := map[string]bool{}
	prefixes := map[string]bool{}
	registries := map[string]bool{}
	defaults := 0
	for i, r := range rules {
		at := fmt.Sprintf("upstreams[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", at))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, r.Name))
		}
		names[r.Name] = true
		u, urlErrs := validateURLs(at, r)
		errs = append(errs, urlErrs...)
		if r.Prefix != "" {
			if strings.Contains(r.Prefix, "/") || !validComponent(r.Prefix) {
				errs = append(errs, fmt.Errorf("%s.prefix: %q is not a single lower-case name component", at, r.Prefix))
			} else if prefixes[r.Prefix] {
				errs = append(errs, fmt.Errorf("%s.prefix: %q is used twice", at, r.Prefix))
			}
			prefixes[r.Prefix] = true
		}
		if r.Registry != "" {
			reg := strings.ToLower(r.Registry)
			if registries[reg] {
				errs = append(errs, fmt.Errorf("%s.registry: %q is used twice", at, r.Registry))
			}
			registries[reg] = true
		}
		if r.Prefix == "" && r.Registry == "" && !r.Default {
			errs = append(errs, fmt.Errorf("%s: needs a prefix, a registry or default: true, or nothing can reach it", at))
		}
		if r.Default {
			defaults++
		}
		if r.TTL < 0 {
			errs = append(errs, fmt.Errorf("%s.ttl: must not be negative", at))
		}
		if r.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: must not be negative", at))
		}
		if r.UpstreamBandwidth < 0 {
			errs = append(errs, fmt.Errorf("%s.upstreamBandwidth: must not be negative (bytes per second; 0 is no cap)", at))
		}
		if r.IdleTimeout < 0 {
			errs = append(errs, fmt.Errorf("%s.idleTimeout: must not be negative", at))
		}
		if r.PasswordFile != "" && r.Username == "" {
			errs = append(errs, fmt.Errorf("%s.passwordFile: needs username", at))
		}
		if r.PasswordFile != "" && r.DockerConfig != "" {
			errs = append(errs, fmt.Errorf("%s: give passwordFile or dockerConfig, not both", at))
		}
		errs = append(errs, validateUpstreamTLS(at, r, u)...)
		errs = append(errs, validateQuota(at, r)...)
		errs = append(errs, validateAllowedHosts(at, r.AllowedHosts)...)
		errs = append(errs, validateFreshness(at, r)...)
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("upstreams: %d rules are marked default; at most one may be", defaults))
	}
	return errs
}

// validateURLs checks url and urls, and returns the first endpoint's URL
// (nil when it did not parse).
func validateURLs(at string, r Upstream) (*url.URL, []error) {
	var errs []error
	eps := r.URLs
	field := at + ".urls"
	switch {
	case len(r.URLs) == 0 && r.URL == "":
		return nil, []error{fmt.Errorf("%s.url: required (or urls, a list of endpoints)", at)}
	case len(r.URLs) == 0:
		eps, field = []string{r.URL}, at+".url"
	case r.URL != "" && r.URL != r.URLs[0]:
		errs = append(errs, fmt.Errorf("%s: give url or urls, not both", at))
	}
	var first *url.URL
	seen := map[string]bool{}
	for j, raw := range eps {
		f := field
		if len(r.URLs) > 0 {
			f = fmt.Sprintf("%s[%d]", field, j)
		}
		u, err := checkURL(f, raw, "a path is not supported")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if u.User != nil {
			// The client never sends them, and the URL is shown by the
			// admin API and the status page.
			errs = append(errs, fmt.Errorf("%s: no user or password in the URL; give them as username and passwordFile", f))
			continue
		}
		if j == 0 {
			first = u
		}
		key := strings.ToLower(u.Scheme + "://" + u.Host)
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s: %q is listed twice", f, raw))
		}
		seen[key] = true
	}
	if r.Proxy != "" {
		if _, err := checkURL(at+".proxy", r.Proxy, "a proxy URL has no path"); err != nil {
			errs = append(errs, err)
		}
	}
	for j, h := range r.NoProxy {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/@?# ") && !isCIDR(h) {
			errs = append(errs, fmt.Errorf("%s.noProxy[%d]: %q is not a host, *.domain, address or CIDR", at, j, h))
		}
	}
	if len(r.NoProxy) > 0 && r.Proxy == "" {
		errs = append(errs, fmt.Errorf("%s.noProxy: needs proxy (without it, the environment's NO_PROXY applies)", at))
	}
	return first, errs
}

// checkURL checks that raw is an http or https URL with a host and no path.
func checkURL(field, raw, noPath string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, fmt.Errorf("%s: must not be empty", field)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", field, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s: scheme must be http or https, not %q", field, u.Scheme)
	case u.Host == "":
		return nil, fmt.Errorf("%s: no host in %q", field, raw)
	case strings.Trim(u.Path, "/") != "":
		return nil, fmt.Errorf("%s: %s (%q)", field, noPath, u.Path)
	}
	return u, nil
}

func isCIDR(s string) bool {
	_, _, err := net.ParseCIDR(s)
	return err == nil
}

// validateUpstreamTLS checks the TLS keys of r, whose URL parsed as u (nil
// when it did not parse).
func validateUpstreamTLS(at string, r Upstream, u *url.URL) []error {
	var errs []error
	if (r.CertFile == "") != (r.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s: certFile and keyFile go together", at))
	}
	https := false
	for _, e := range r.Endpoints() {
		https = https || strings.HasPrefix(strings.ToLower(e), "https://")
	}
	if u != nil && !https && (r.CAFile != "" || r.CertFile != "" || r.KeyFile != "" || r.InsecureSkipVerify) {
		errs = append(errs, fmt.Errorf("%s: caFile, certFile, keyFile and insecureSkipVerify need an https url", at))
	}
	return errs
}

// validateQuota checks the rate limit and the credential pool of r.
func validateQuota(at string, r Upstream) []error {
	var errs []error
	if r.RequestsPerSecond < 0 || math.IsNaN(r.RequestsPerSecond) || math.IsInf(r.RequestsPerSecond, 0) {
		errs = append(errs, fmt.Errorf("%s.requestsPerSecond: must be a finite number, 0 or more", at))
	}
	if r.Burst < 0 {
		errs = append(errs, fmt.Errorf("%s.burst: must not be negative", at))
	} else if r.Burst > 0 && r.RequestsPerSecond == 0 {
		errs = append(errs, fmt.Errorf("%s.burst: needs requestsPerSecond", at))
	}
	if len(r.Credentials) == 0 {
		return errs
	}
	if r.Username != "" || r.PasswordFile != "" {
		errs = append(errs, fmt.Errorf("%s: give credentials or username/passwordFile, not both", at))
	}
	if r.DockerConfig != "" {
		errs = append(errs, fmt.Errorf("%s: give credentials or dockerConfig, not both", at))
	}
	users := map[string]bool{}
	for j, c := range r.Credentials {
		cat := fmt.Sprintf("%s.credentials[%d]", at, j)
		switch {
		case c.Username == "":
			errs = append(errs, fmt.Errorf("%s.username: required", cat))
		case users[c.Username]:
			errs = append(errs, fmt.Errorf("%s.username: %q is used twice", cat, c.Username))
		}
		users[c.Username] = true
		if c.PasswordFile == "" {
			errs = append(errs, fmt.Errorf("%s.passwordFile: required", cat))
		}
	}
	return errs
}

// validateAllowedHosts checks that every entry is a host pattern: a host
// name or address with an optional port, or "*.domain".
func validateAllowedHosts(at string, hosts []string) []error {
	var errs []error
	for j, h := range hosts {
		name := h
		if strings.ContainsAny(h, "/@?#") {
			name = ""
		} else if host, port, err := net.SplitHostPort(h); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				errs = append(errs, fmt.Errorf("%s.allowedHosts[%d]: %q has a bad port", at, j, h))
				continue
			}
			name = host
		}
		name = strings.TrimPrefix(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"), "*.")
		if name == "" || strings.ContainsAny(name, "*[] ") {
			errs = append(errs, fmt.Errorf("%s.allowedHosts[%d]: %q is not a host name, host:port or *.domain", at, j, h))
		}
	}
	return errs
}

func validComponent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// HasCredentials reports whether Berth reaches the upstream as someone:
// with a user name and password, a Docker config, a credential pool or a
// client certificate. What such a rule fetches may be private to the
// account, so it is never shared beyond the cached repository it was
// fetched for (see store.Origin).
func (r Upstream) HasCredentials() bool {
	return r.Username != "" || r.PasswordFile != "" || r.DockerConfig != "" ||
		len(r.Credentials) > 0 || r.CertFile != ""
}
