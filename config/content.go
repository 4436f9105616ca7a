package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"berth/internal/reponame"
)

// RateLimit is the per-client token bucket.
type RateLimit struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	Burst             int     `yaml:"burst"`
	// Disabled turns rate limiting off.
	Disabled bool `yaml:"disabled"`
	// Users and Groups give logged-in users their own limits (a user's
	// own entry first, then the first of their groups that has one).
	Users  map[string]Rate `yaml:"users"`
	Groups map[string]Rate `yaml:"groups"`
}

// Rate is one token bucket.
type Rate struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	Burst             int     `yaml:"burst"`
}

// Cache tunes the store.
type Cache struct {
	HotManifestBytes int64         `yaml:"hotManifestBytes"`
	FillTimeout      time.Duration `yaml:"fillTimeout"`
	// MaxBytes caps the blob bytes of the store (0: no cap). Past
	// HighWatermark×MaxBytes cached content is evicted, least recently
	// pulled first, down to LowWatermark×MaxBytes.
	MaxBytes      int64   `yaml:"maxBytes"`
	HighWatermark float64 `yaml:"highWatermark"`
	LowWatermark  float64 `yaml:"lowWatermark"`
	// MinFreeBytes also evicts when the data directory's file system has
	// less free space than this (0: no floor).
	MinFreeBytes int64 `yaml:"minFreeBytes"`
	// Pinned are cached images never evicted, named as clients pull them
	// through Berth: "docker-hub/library/alpine:3.20", or without a tag for
	// every image of the repository.
	Pinned []string `yaml:"pinned"`
	// EvictInterval is how often capacity is checked.
	EvictInterval time.Duration `yaml:"evictInterval"`
}

// Local configures the local (pushed-to) repositories.
type Local struct {
	// Prefixes are first path components that make a name local even when
	// a default upstream takes unprefixed names.
	Prefixes []string `yaml:"prefixes"`
	// AutoCreate creates a repository on its first push.
	AutoCreate bool `yaml:"autoCreate"`
	// DefaultMutability is the tag mutability of auto-created repositories.
	DefaultMutability string `yaml:"defaultMutability"`
	// MaxUploadBytes caps one blob upload (0: no cap); a chunk that would
	// cross it is refused with 413 SIZE_INVALID.
	MaxUploadBytes int64 `yaml:"maxUploadBytes"`
	// MaxOpenUploads caps the upload sessions one client holds open at
	// once (0: no cap): a user by name, an anonymous client by address.
	// One more is refused with 429 TOOMANYREQUESTS.
	MaxOpenUploads int `yaml:"maxOpenUploads"`
	// UploadTimeout ends upload sessions idle for longer and reclaims
	// their bytes.
	UploadTimeout time.Duration `yaml:"uploadTimeout"`
	// GCInterval is how often garbage collection runs (0: never).
	GCInterval time.Duration `yaml:"gcInterval"`
	// GCGrace keeps unreferenced blobs this long after their upload.
	GCGrace time.Duration `yaml:"gcGrace"`
	// LifecycleInterval is how often lifecycle policies expire images
	// (0: never; ECR evaluates daily).
	LifecycleInterval time.Duration `yaml:"lifecycleInterval"`
	// AllowAnonymousRemoteWrites, with auth off, accepts pushes and deletes
	// from every client; without it only loopback clients may write.
	AllowAnonymousRemoteWrites bool `yaml:"allowAnonymousRemoteWrites"`
}

// SplitRef splits a pinned image, "name:tag" or "name@digest", into the
// name and the reference ("" when there is none).
func SplitRef(s string) (name, ref string) {
	if n, d, ok := strings.Cut(s, "@"); ok {
		return n, d
	}
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func (c RateLimit) validate() []error {
	if c.Disabled {
		return nil
	}
	var errs []error
	if c.RequestsPerSecond <= 0 {
		errs = append(errs, errors.New("rateLimit.requestsPerSecond: must be positive (or set rateLimit.disabled)"))
	}
	if c.Burst < 1 {
		errs = append(errs, errors.New("rateLimit.burst: must be at least 1"))
	}
	for _, m := range []struct {
		kind  string
		rates map[string]Rate
	}{{"users", c.Users}, {"groups", c.Groups}} {
		for name, r := range m.rates {
			if r.RequestsPerSecond <= 0 || r.Burst < 1 {
				errs = append(errs, fmt.Errorf("rateLimit.%s.%s: requestsPerSecond must be positive and burst at least 1", m.kind, name))
			}
		}
	}
	return errs
}

func (c Cache) validate() []error {
	var errs []error
	if c.HotManifestBytes < 0 {
		errs = append(errs, errors.New("cache.hotManifestBytes: must not be negative"))
	}
	if c.MaxBytes < 0 || c.MinFreeBytes < 0 {
		errs = append(errs, errors.New("cache.maxBytes and cache.minFreeBytes: must not be negative"))
	}
	if !(c.LowWatermark > 0 && c.LowWatermark < c.HighWatermark && c.HighWatermark <= 1) {
		errs = append(errs, fmt.Errorf("cache.lowWatermark (%v) and cache.highWatermark (%v): need 0 < low < high <= 1", c.LowWatermark, c.HighWatermark))
	}
	if c.EvictInterval <= 0 {
		errs = append(errs, errors.New("cache.evictInterval: must be positive"))
	}
	for i, p := range c.Pinned {
		if name, _ := SplitRef(p); !reponame.Valid(name) {
			errs = append(errs, fmt.Errorf("cache.pinned[%d]: %q is not an image name", i, p))
		}
	}
	if c.FillTimeout < 0 {
		errs = append(errs, errors.New("cache.fillTimeout: must not be negative"))
	}
	return errs
}

func (c Local) validate(upstreams []Upstream) []error {
	var errs []error
	for i, p := range c.Prefixes {
		if p == "" || strings.Contains(p, "/") || !reponame.Valid(p) {
			errs = append(errs, fmt.Errorf("local.prefixes[%d]: %q is not a single repository name component", i, p))
		}
		for _, u := range upstreams {
			if u.Prefix == p {
				errs = append(errs, fmt.Errorf("local.prefixes[%d]: %q is also the prefix of upstream %s", i, p, u.Name))
			}
		}
	}
	if m := c.DefaultMutability; m != "MUTABLE" && m != "IMMUTABLE" {
		errs = append(errs, fmt.Errorf("local.defaultMutability: %q is not MUTABLE or IMMUTABLE", m))
	}
	if c.UploadTimeout <= 0 {
		errs = append(errs, errors.New("local.uploadTimeout: must be positive"))
	}
	if c.MaxOpenUploads < 0 {
		errs = append(errs, errors.New("local.maxOpenUploads: must not be negative (0: no cap)"))
	}
	if c.GCInterval < 0 {
		errs = append(errs, errors.New("local.gcInterval: must not be negative"))
	}
	if c.LifecycleInterval < 0 {
		errs = append(errs, errors.New("local.lifecycleInterval: must not be negative"))
	}
	if c.GCGrace < 0 {
		errs = append(errs, errors.New("local.gcGrace: must not be negative"))
	}
	return errs
}
