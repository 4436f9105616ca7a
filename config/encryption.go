package config

import "fmt"

// Encryption is encryption at rest (docs/security.md): blob files and
// manifest bodies encrypted with AES-256-GCM under per-item data keys,
// wrapped by the master key in KeyFile. Off when KeyFile is empty.
type Encryption struct {
	// KeyFile holds the 256-bit master key as 64 hex characters (like
	// cluster.secretFile). Read at start; berth rotate-key replaces it.
	KeyFile string `yaml:"keyFile"`
	// Scope is what is encrypted: "local" (default), the content of local
	// (pushed) repositories; "all", cached content too.
	Scope string `yaml:"scope"`
}

// Encryption scopes.
const (
	EncryptLocal = "local"
	EncryptAll   = "all"
)

// Enabled reports whether encryption at rest is on.
func (e Encryption) Enabled() bool { return e.KeyFile != "" }

// All reports whether cached content is encrypted too.
func (e Encryption) All() bool { return e.Scope == EncryptAll }

func (e Encryption) validate() []error {
	switch e.Scope {
	case "", EncryptLocal, EncryptAll:
	default:
		return []error{fmt.Errorf("encryption.scope: %q is neither %q nor %q", e.Scope, EncryptLocal, EncryptAll)}
	}
	return nil
}
