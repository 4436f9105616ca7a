package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"berth/registry"
	"berth/upstream"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of a node. Every key is documented in
// config.example.yaml.
type Config struct {
	Listen          string          `yaml:"listen"`
	DataDir         string          `yaml:"dataDir"`
	ShutdownTimeout time.Duration   `yaml:"shutdownTimeout"`
	Upstreams       []upstream.Rule `yaml:"upstreams"`
	RateLimit       RateLimitConfig `yaml:"rateLimit"`
	Cache           CacheConfig     `yaml:"cache"`
	Local           LocalConfig     `yaml:"local"`
	Admin           AdminConfig     `yaml:"admin"`
	Audit           AuditConfig     `yaml:"audit"`
	Auth            AuthConfig      `yaml:"auth"`
	TLS             TLSConfig       `yaml:"tls"`
	Cluster         ClusterConfig   `yaml:"cluster"`
	Log             LogConfig       `yaml:"log"`
}

// RateLimitConfig is the per-client token bucket.
type RateLimitConfig struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	Burst             int     `yaml:"burst"`
	// Disabled turns rate limiting off.
	Disabled bool `yaml:"disabled"`
	// Users and Groups give logged-in users their own limits (a user's
	// own entry first, then the first of their groups that has one).
	Users  map[string]RateConfig `yaml:"users"`
	Groups map[string]RateConfig `yaml:"groups"`
}

// RateConfig is one token bucket.
type RateConfig struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	Burst             int     `yaml:"burst"`
}

// CacheConfig tunes the store.
type CacheConfig struct {
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

// LocalConfig configures the local (pushed-to) repositories.
type LocalConfig struct {
	// Prefixes are first path components that make a name local even when
	// a default upstream takes unprefixed names.
	Prefixes []string `yaml:"prefixes"`
	// AutoCreate creates a repository on its first push.
	AutoCreate bool `yaml:"autoCreate"`
	// DefaultMutability is the tag mutability of auto-created repositories.
	DefaultMutability string `yaml:"defaultMutability"`
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
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// DefaultConfig is what Berth runs on without a config file: Docker Hub
// mirrored on :5000 with data under ./berth-data.
func DefaultConfig() Config {
	cfg := Config{
		Listen:          ":5000",
		DataDir:         "./berth-data",
		ShutdownTimeout: 30 * time.Second,
		Upstreams: []upstream.Rule{{
			Name:     "docker-hub",
			Prefix:   "docker-hub",
			Registry: "docker.io",
			URL:      "https://registry-1.docker.io",
			Default:  true,
		}},
		RateLimit: RateLimitConfig{RequestsPerSecond: 200, Burst: 400},
		Cache: CacheConfig{HotManifestBytes: 64 << 20, FillTimeout: time.Hour,
			HighWatermark: 0.9, LowWatermark: 0.8, EvictInterval: 10 * time.Second},
		Local: LocalConfig{
			Prefixes: []string{"private"}, AutoCreate: true, DefaultMutability: "MUTABLE",
			UploadTimeout: 24 * time.Hour, GCInterval: 6 * time.Hour, GCGrace: time.Hour, LifecycleInterval: 24 * time.Hour,
		},
		Log:   LogConfig{Format: "json", Level: "info"},
		Admin: AdminConfig{Listen: "127.0.0.1:5001"},
		Audit: AuditConfig{MaxBytes: 100 << 20, Keep: 5},
		Auth:  defaultAuthConfig(),
	}
	cfg.Upstreams[0] = cfg.Upstreams[0].WithDefaults()
	return cfg
}

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors.
// A file that lists upstreams replaces the default upstream list.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, cfg.Validate()
	}
	// A file without an upstreams key keeps the default upstream; a file
	// that lists upstreams replaces it (the decoder replaces slices).
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("parse %s: %w", path, err)
	}
	for i := range cfg.Upstreams {
		cfg.Upstreams[i] = cfg.Upstreams[i].WithDefaults()
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid config %s:\n%w", path, err)
	}
	return cfg, nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port (%v)", c.Listen, err))
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %q is not host:port (%v)", c.Admin.Listen, err))
		}
	}
	if c.Audit.MaxBytes < 0 || c.Audit.Keep < 0 {
		errs = append(errs, errors.New("audit.maxBytes and audit.keep: must not be negative"))
	}
	errs = append(errs, c.Auth.validate()...)
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.Cluster.validate()...)
	if c.DataDir == "" {
		errs = append(errs, errors.New("dataDir: required"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdownTimeout: must be positive"))
	}
	if err := upstream.Validate(c.Upstreams); err != nil {
		errs = append(errs, err)
	}
	if !c.RateLimit.Disabled {
		if c.RateLimit.RequestsPerSecond <= 0 {
			errs = append(errs, errors.New("rateLimit.requestsPerSecond: must be positive (or set rateLimit.disabled)"))
		}
		if c.RateLimit.Burst < 1 {
			errs = append(errs, errors.New("rateLimit.burst: must be at least 1"))
		}
		for kind, m := range map[string]map[string]RateConfig{"users": c.RateLimit.Users, "groups": c.RateLimit.Groups} {
			for name, r := range m {
				if r.RequestsPerSecond <= 0 || r.Burst < 1 {
					errs = append(errs, fmt.Errorf("rateLimit.%s.%s: requestsPerSecond must be positive and burst at least 1", kind, name))
				}
			}
		}
	}
	if c.Cache.HotManifestBytes < 0 {
		errs = append(errs, errors.New("cache.hotManifestBytes: must not be negative"))
	}
	if c.Cache.MaxBytes < 0 || c.Cache.MinFreeBytes < 0 {
		errs = append(errs, errors.New("cache.maxBytes and cache.minFreeBytes: must not be negative"))
	}
	if !(c.Cache.LowWatermark > 0 && c.Cache.LowWatermark < c.Cache.HighWatermark && c.Cache.HighWatermark <= 1) {
		errs = append(errs, fmt.Errorf("cache.lowWatermark (%v) and cache.highWatermark (%v): need 0 < low < high <= 1", c.Cache.LowWatermark, c.Cache.HighWatermark))
	}
	if c.Cache.EvictInterval <= 0 {
		errs = append(errs, errors.New("cache.evictInterval: must be positive"))
	}
	for i, p := range c.Cache.Pinned {
		name, _, _ := strings.Cut(p, "@")
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
		if !registry.ValidName(name) {
			errs = append(errs, fmt.Errorf("cache.pinned[%d]: %q is not an image name", i, p))
		}
	}
	if c.Cache.FillTimeout < 0 {
		errs = append(errs, errors.New("cache.fillTimeout: must not be negative"))
	}
	for i, p := range c.Local.Prefixes {
		if p == "" || strings.Contains(p, "/") || !registry.ValidName(p) {
			errs = append(errs, fmt.Errorf("local.prefixes[%d]: %q is not a single repository name component", i, p))
		}
		for _, u := range c.Upstreams {
			if u.Prefix == p {
				errs = append(errs, fmt.Errorf("local.prefixes[%d]: %q is also the prefix of upstream %s", i, p, u.Name))
			}
		}
	}
	if m := c.Local.DefaultMutability; m != "MUTABLE" && m != "IMMUTABLE" {
		errs = append(errs, fmt.Errorf("local.defaultMutability: %q is not MUTABLE or IMMUTABLE", c.Local.DefaultMutability))
	}
	if c.Local.UploadTimeout <= 0 {
		errs = append(errs, errors.New("local.uploadTimeout: must be positive"))
	}
	if c.Local.GCInterval < 0 {
		errs = append(errs, errors.New("local.gcInterval: must not be negative"))
	}
	if c.Local.LifecycleInterval < 0 {
		errs = append(errs, errors.New("local.lifecycleInterval: must not be negative"))
	}
	if c.Local.GCGrace < 0 {
		errs = append(errs, errors.New("local.gcGrace: must not be negative"))
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not json or console", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	return errors.Join(errs...)
}
