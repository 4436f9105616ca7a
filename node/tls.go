package node

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"

	"berth/config"
)

// certificate holds the current certificate; new handshakes see a reload,
// established connections keep theirs.
type certificate struct {
	cfg config.TLS
	cur atomic.Pointer[tls.Certificate]
}

func newCertificate(cfg config.TLS) (*certificate, error) {
	c := &certificate{cfg: cfg}
	return c, c.reload()
}

func (c *certificate) reload() error {
	cert, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}
