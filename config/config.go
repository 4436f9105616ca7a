// Package config is Berth's configuration: every section's types, their
// defaults and validation, and the loading of a YAML file over the
// defaults. It holds data only; the packages that run a node turn it into
// listeners, clients and policies. Every key is documented in
// config.example.yaml and docs/configuration.md.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Config is the whole configuration of a node.
type Config struct {
	Listen          string        `yaml:"listen"`
	DataDir         string        `yaml:"dataDir"`
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	Upstreams       []Upstream    `yaml:"upstreams"`
	RateLimit       RateLimit     `yaml:"rateLimit"`
	Cache           Cache         `yaml:"cache"`
	Local           Local         `yaml:"local"`
	Admin           Admin         `yaml:"admin"`
	Audit           Audit         `yaml:"audit"`
	Auth            Auth          `yaml:"auth"`
	TLS             TLS           `yaml:"tls"`
	Cluster         Cluster       `yaml:"cluster"`
	Encryption      Encryption    `yaml:"encryption"`
	Log             Log           `yaml:"log"`

	// Offline makes every upstream rule offline (Upstream.Offline).
	Offline bool `yaml:"offline"`
	// UpstreamBandwidth caps, in bytes per second, what all fills of the
	// node draw from upstreams together (0: no cap), besides each rule's.
	UpstreamBandwidth int64 `yaml:"upstreamBandwidth"`
	// ServeBandwidth caps, in bytes per second, the blob bodies one client
	// (a user, an anonymous address, a cluster peer) receives (0: no cap);
	// MaxBlobStreams caps its concurrent blob streams (0: no cap), the
	// others waiting for a slot.
	ServeBandwidth int64 `yaml:"serveBandwidth"`
	MaxBlobStreams int   `yaml:"maxBlobStreams"`
	// MaxConnections caps the connections each listener holds, and
	// MaxConnectionsPerAddress those from one address (0: no cap); one
	// past a cap is answered TOOMANYREQUESTS and closed.
	MaxConnections           int `yaml:"maxConnections"`
	MaxConnectionsPerAddress int `yaml:"maxConnectionsPerAddress"`
	// Sync are the rules that fill the cache ahead of clients.
	Sync []SyncRule `yaml:"sync"`
	// Replication copies pushes to local repositories to other registries.
	Replication []Replication `yaml:"replication"`
	// Bundles sets how bundles are imported.
	Bundles Bundles `yaml:"bundles"`
	// Scanning configures image scanning and its vulnerability database.
	Scanning Scanning `yaml:"scanning"`
	// Source says where the values came from; it is not a key of the file.
	Source Source `yaml:"-"`
}

// Source identifies a loaded configuration.
type Source struct {
	// Path is the file read; "" for the built-in defaults.
	Path string
	// Hash is the SHA-256 of the file's bytes, in hex; "" for the
	// built-in defaults.
	Hash string
	// LoadedAt is when Load read the file.
	LoadedAt time.Time
}

// Error is a configuration that does not decode or validate: every
// problem, each naming its key.
type Error struct {
	// Path is the file; "" when the configuration came from bytes.
	Path     string
	Problems []error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid config")
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n" + p.Error())
	}
	return b.String()
}

// Unwrap gives the problems to errors.Is and errors.As.
func (e *Error) Unwrap() []error { return e.Problems }

// Default is what Berth runs on without a config file: Docker Hub mirrored
// on :5000 with data under ./berth-data.
func Default() Config {
	hub := Upstream{
		Name:     "docker-hub",
		Prefix:   "docker-hub",
		Registry: "docker.io",
		URL:      "https://registry-1.docker.io",
		Default:  true,
	}
	return Config{
		Listen:          ":5000",
		DataDir:         "./berth-data",
		ShutdownTimeout: 30 * time.Second,
		Upstreams:       []Upstream{hub.WithDefaults()},
		RateLimit:       RateLimit{RequestsPerSecond: 200, Burst: 400},
		// About 20 KB an idle connection: 160 MB at most per listener.
		MaxConnections:           8192,
		MaxConnectionsPerAddress: 512,
		Cache: Cache{HotManifestBytes: 64 << 20, FillTimeout: time.Hour,
			HighWatermark: 0.9, LowWatermark: 0.8, EvictInterval: 10 * time.Second},
		Local: Local{
			Prefixes: []string{"private"}, AutoCreate: true, DefaultMutability: "MUTABLE",
			MaxOpenUploads: 16, UploadTimeout: 24 * time.Hour, GCInterval: 6 * time.Hour, GCGrace: time.Hour, LifecycleInterval: 24 * time.Hour,
		},
		Log:      Log{Format: "json", Level: "info"},
		Admin:    Admin{Listen: "127.0.0.1:5001"},
		Audit:    Audit{MaxBytes: 100 << 20, Keep: 5},
		Auth:     defaultAuth(),
		Scanning: defaultScanning(),
	}
}

// Check is a caller's own test of a decoded configuration (that the files
// it names load, say); its problems join config's own in the one error.
type Check func(Config) []error

// Load reads the YAML file at path over the defaults; path "" gives the
// defaults. A file that does not decode or validate, or fails one of the
// checks, gives an *Error with every problem.
func Load(path string, checks ...Check) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
	}
	cfg, err := Parse(data, checks...)
	if e := (*Error)(nil); errors.As(err, &e) {
		e.Path = path
	}
	if err != nil {
		return Config{}, err
	}
	if path == "" {
		cfg.Source.Hash = ""
	}
	cfg.Source.Path, cfg.Source.LoadedAt = path, time.Now()
	return cfg, nil
}

// Parse decodes a YAML document over the defaults and validates the
// result. Keys left out keep their defaults; a list or a map given in the
// document replaces the default one (so a file that lists upstreams
// replaces the default upstream). Unknown keys are errors.
func Parse(data []byte, checks ...Check) (Config, error) {
	cfg := Default()
	problems, failed := decode(data, &cfg)
	for i := range cfg.Upstreams {
		cfg.Upstreams[i] = cfg.Upstreams[i].WithDefaults()
	}
	for i := range cfg.Sync {
		cfg.Sync[i] = cfg.Sync[i].WithDefaults()
	}
	for _, p := range cfg.problems() {
		// A key that did not decode is reported once, as such.
		if key, _, _ := strings.Cut(p.Error(), ":"); !failed[key] {
			problems = append(problems, p)
		}
	}
	for _, check := range checks {
		problems = append(problems, check(cfg)...)
	}
	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	sum := sha256.Sum256(data)
	cfg.Source.Hash = hex.EncodeToString(sum[:])
	return cfg, nil
}

// Validate reports every problem at once, as an *Error.
func (c Config) Validate() error {
	if p := c.problems(); len(p) > 0 {
		return &Error{Path: c.Source.Path, Problems: p}
	}
	return nil
}

func (c Config) problems() []error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port (%v)", c.Listen, err))
	}
	errs = append(errs, c.Admin.validate(c.Auth.Enabled)...)
	errs = append(errs, c.Audit.validate()...)
	errs = append(errs, c.Auth.validate()...)
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.Cluster.validate()...)
	errs = append(errs, c.Encryption.validate()...)
	if c.DataDir == "" {
		errs = append(errs, errors.New("dataDir: required"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdownTimeout: must be positive"))
	}
	errs = append(errs, upstreamProblems(c.Upstreams)...)
	for key, v := range map[string]int64{"upstreamBandwidth": c.UpstreamBandwidth, "serveBandwidth": c.ServeBandwidth, "maxBlobStreams": int64(c.MaxBlobStreams),
		"maxConnections": int64(c.MaxConnections), "maxConnectionsPerAddress": int64(c.MaxConnectionsPerAddress)} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative (0 is no cap)", key))
		}
	}
	errs = append(errs, validateSync(c.Sync, c.Upstreams)...)
	errs = append(errs, validateReplication(c.Replication)...)
	errs = append(errs, c.Bundles.validate()...)
	errs = append(errs, c.Scanning.validate()...)
	errs = append(errs, c.RateLimit.validate()...)
	errs = append(errs, c.Cache.validate()...)
	errs = append(errs, c.Local.validate(c.Upstreams)...)
	errs = append(errs, c.Log.validate()...)
	return errs
}
