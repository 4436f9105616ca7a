package cluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSecret(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, SecretSize)
	raw := []byte("\x00\xff0123456789abcdef0123456789abcd") // 32 raw bytes
	tests := []struct {
		name    string
		content []byte // nil: no file
		want    []byte
		wantErr error
	}{
		{name: "hex", content: []byte(hex.EncodeToString(key)), want: key},
		{name: "hex with newline", content: []byte(hex.EncodeToString(key) + "\n"), want: key},
		{name: "upper-case hex with spaces", content: []byte("  " + strings.ToUpper(hex.EncodeToString(key)) + " \r\n"), want: key},
		{name: "raw bytes", content: raw, want: raw},
		{name: "raw bytes with whitespace", content: append([]byte("\n\t "), bytes.Repeat([]byte{7}, 29)...), want: append([]byte("\n\t "), bytes.Repeat([]byte{7}, 29)...)},
		{name: "short hex", content: []byte(hex.EncodeToString(key[:16])), wantErr: ErrInvalidSecret},
		{name: "64 chars not hex", content: []byte(strings.Repeat("z", 64)), wantErr: ErrInvalidSecret},
		{name: "empty", content: []byte{}, wantErr: ErrInvalidSecret},
		{name: "too long", content: bytes.Repeat([]byte{1}, 33), wantErr: ErrInvalidSecret},
		{name: "missing file", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LoadSecret(path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("LoadSecret = %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

func TestStartInvalidConfig(t *testing.T) {
	good := func() Config {
		return Config{NodeName: "n", GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:5001", Secret: secret(1)}
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		opts    []Option
		wantErr error
	}{
		{name: "no secret", edit: func(c *Config) { c.Secret = nil }, wantErr: ErrInvalidSecret},
		{name: "short secret", edit: func(c *Config) { c.Secret = secret(1)[:16] }, wantErr: ErrInvalidConfig},
		{name: "no peer address", edit: func(c *Config) { c.PeerAddr = "" }, wantErr: ErrInvalidConfig},
		{name: "peer address without port", edit: func(c *Config) { c.PeerAddr = "127.0.0.1" }, wantErr: ErrInvalidConfig},
		{name: "bad gossip address", edit: func(c *Config) { c.GossipAddr = "127.0.0.1" }, wantErr: ErrInvalidConfig},
		{name: "bad advertise address", edit: func(c *Config) { c.AdvertiseAddr = ":7946" }, wantErr: ErrInvalidConfig},
		{name: "bad join address", edit: func(c *Config) { c.Join = []string{"nohost"} }, wantErr: ErrInvalidConfig},
		{name: "name with space", edit: func(c *Config) { c.NodeName = "a b" }, wantErr: ErrInvalidConfig},
		{name: "negative replicas", edit: func(c *Config) { c.Replicas = -1 }, wantErr: ErrInvalidConfig},
		{name: "version too long", opts: []Option{WithVersion(strings.Repeat("v", 500))}, wantErr: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			c, err := Start(t.Context(), cfg, nil, tt.opts...)
			if err == nil {
				stop(t, c, false)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestStartDefaults(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantPeer string
	}{
		{name: "peer host from gossip address", cfg: Config{GossipAddr: "127.0.0.1:0", PeerAddr: ":5001"}, wantPeer: "127.0.0.1:5001"},
		{name: "unspecified peer host", cfg: Config{GossipAddr: "127.0.0.1:0", PeerAddr: "0.0.0.0:5001"}, wantPeer: "127.0.0.1:5001"},
		{name: "explicit peer host", cfg: Config{GossipAddr: "127.0.0.1:0", PeerAddr: "mirror-1.site:5001"}, wantPeer: "mirror-1.site:5001"},
		{name: "advertised host", cfg: Config{GossipAddr: "127.0.0.1:0", AdvertiseAddr: "127.0.0.2:7946", PeerAddr: ":5001"}, wantPeer: "127.0.0.2:5001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Secret = secret(1)
			c, err := Start(t.Context(), tt.cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer stop(t, c, true)
			self := c.Self()
			host, _ := os.Hostname()
			if self.Name != host || self.PeerAddr != tt.wantPeer || self.State != StateAlive || !self.Self ||
				strings.HasSuffix(self.GossipAddr, ":0") || c.set.replicas != 2 {
				t.Errorf("Self() = %+v, replicas %d", self, c.set.replicas)
			}
			if got := c.Owners("k"); len(got) != 1 || !got[0].Self {
				t.Errorf("Owners on a single node = %+v", got)
			}
		})
	}
}
