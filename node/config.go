package node

import (
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"os"

	"berth/auth"
	"berth/bundle"
	"berth/cluster"
	"berth/config"
)

// LoadConfig loads the config file at path (built-in defaults for "") and
// checks, beyond config's validation, that the files it names load:
// policies, the TLS certificates, the cluster secret and the encryption
// key. Every problem is
// in the one error.
func LoadConfig(path string) (config.Config, error) {
	return config.Load(path, checkFiles)
}

// checkFiles loads the files a config names, as the node will.
func checkFiles(c config.Config) []error {
	var errs []error
	if c.Auth.Enabled {
		for i, p := range c.Auth.Policies {
			if (p.File == "") == (p.Policy == "") {
				continue // config reports it
			}
			if _, err := loadPolicy(p); err != nil {
				errs = append(errs, fmt.Errorf("auth.policies[%d]: %w", i, err))
			}
		}
	}
	if _, err := loadVerifyKeys(c.Bundles); err != nil {
		errs = append(errs, err)
	}
	if p := c.Scanning.VulnDB; p != "" {
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("scanning.vulnDB: %w (name an OSV zip dump, JSON file or directory)", err))
		}
	}
	if c.TLS.Listen != "" && c.TLS.CertFile != "" && c.TLS.KeyFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	if c.Encryption.Enabled() {
		if _, err := readEncryptionKey(c.Encryption.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("encryption.keyFile: %w", err))
		}
	}
	if !c.Cluster.Enabled() {
		return errs
	}
	if c.Cluster.SecretFile != "" {
		if _, err := cluster.LoadSecret(c.Cluster.SecretFile); err != nil {
			errs = append(errs, fmt.Errorf("cluster.secretFile: %w", err))
		}
	}
	if t := c.Cluster.TLS; t.CAFile != "" && t.CertFile != "" && t.KeyFile != "" {
		if _, _, err := peerTLSConfigs(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// loadPolicy parses a configured repository policy.
func loadPolicy(p config.Policy) (*auth.Policy, error) {
	text, err := p.Text()
	if err != nil {
		return nil, err
	}
	return auth.ParsePolicy(text)
}

// loadVerifyKeys reads bundles.verifyKeys: read at every import, so a
// reload (or a replaced file) applies to the next one.
func loadVerifyKeys(c config.Bundles) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for i, path := range c.VerifyKeys {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("bundles.verifyKeys[%d]: %w", i, err)
		}
		k, err := bundle.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("bundles.verifyKeys[%d]: %s: %w", i, path, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
