package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// tlsConfig is the TLS configuration of rule's connections: the system's
// roots plus rule.CAFile, the client certificate of rule.CertFile and
// rule.KeyFile, and no verification with rule.InsecureSkipVerify. It is nil
// when the rule sets none of them.
func tlsConfig(rule Rule) (*tls.Config, error) {
	if rule.CAFile == "" && rule.CertFile == "" && !rule.InsecureSkipVerify {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: rule.InsecureSkipVerify} // the operator asked; warned at start
	if rule.CAFile != "" {
		pem, err := os.ReadFile(rule.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no PEM certificate in it", rule.CAFile)
		}
		c.RootCAs = pool
	}
	if rule.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(rule.CertFile, rule.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certFile/keyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
