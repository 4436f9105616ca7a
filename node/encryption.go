package node

import (
	"context"
	"fmt"

	"berth/config"
	"berth/internal/keyfile"
	"berth/store"

	"go.uber.org/zap"
)

// readEncryptionKey reads a master key file (the form of the cluster
// secret: keyfile.Read).
func readEncryptionKey(path string) ([]byte, error) {
	key, err := keyfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w (make one with: %s)", err, keyfile.Make)
	}
	return key, nil
}

// storeEncryption is the store's encryption at rest from the config: nil
// when it is off.
func storeEncryption(c config.Encryption) (*store.Encryption, error) {
	if !c.Enabled() {
		return nil, nil
	}
	key, err := readEncryptionKey(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("encryption.keyFile: %w", err)
	}
	return &store.Encryption{Key: key, KeyFile: c.KeyFile, All: c.All(), ReadKey: readEncryptionKey}, nil
}

// rotateKey is the admin API's rotate-key: the key file is read on the
// node, and the store rewraps every data key with it.
func (n *Node) rotateKey(ctx context.Context, newKeyFile string) (store.Rotation, error) {
	key, err := readEncryptionKey(newKeyFile)
	if err != nil {
		return store.Rotation{}, err
	}
	return n.store.RotateKey(ctx, key, newKeyFile)
}

// keepEncryption keeps encryption settings in force at a reload (they are
// bound to the store opened at start), except a key file that holds the
// key the store uses now: after rotate-key the operator points
// encryption.keyFile at the new file and reloads.
func (n *Node) keepEncryption(old config.Config, cfg *config.Config) {
	if cfg.Encryption == old.Encryption {
		return
	}
	st := n.store.Encryption()
	if cfg.Encryption.Scope == old.Encryption.Scope && st.Enabled && cfg.Encryption.Enabled() {
		if key, err := readEncryptionKey(cfg.Encryption.KeyFile); err == nil && store.Fingerprint(key) == st.Key {
			return
		}
	}
	n.log.Warn("encryption changes take effect at the next restart; to change the key, run berth rotate-key --new-key-file FILE",
		zap.String("keyInUse", st.Key))
	cfg.Encryption = old.Encryption
}

// rotateKeyVerb is the admin API's rotate-key: nil when encryption is off.
func (n *Node) rotateKeyVerb(cfg config.Config) func(context.Context, string) (store.Rotation, error) {
	if !cfg.Encryption.Enabled() {
		return nil
	}
	return n.rotateKey
}
