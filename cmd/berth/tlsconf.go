package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
)

// TLSConfig serves the registry API over HTTPS too. The plain listener
// stays (loopback clients, tests); the certificate is reloaded on SIGHUP
// without dropping connections.
type TLSConfig struct {
	// Listen is host:port of the HTTPS listener; empty: no HTTPS.
	Listen   string `yaml:"listen"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

func (c TLSConfig) validate() []error {
	if c.Listen == "" {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("tls.listen: %q is not host:port (%v)", c.Listen, err))
	}
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, errors.New("tls.certFile and tls.keyFile: required with tls.listen"))
	} else if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("tls: %w", err))
	}
	return errs
}

// certificate holds the current certificate; new handshakes see a reload,
// established connections keep theirs.
type certificate struct {
	cfg TLSConfig
	cur atomic.Pointer[tls.Certificate]
}

func newCertificate(cfg TLSConfig) (*certificate, error) {
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
