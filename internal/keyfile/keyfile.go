// Package keyfile reads a 256-bit key from a file, the one form of every
// key file Berth reads: the cluster secret and the encryption key.
package keyfile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// Size is a key's length in bytes.
const Size = 32

// ErrInvalid is a file that holds no key of the form Read accepts.
var ErrInvalid = errors.New("invalid key file")

// Make is the command that writes a new key file.
const Make = "openssl rand -hex 32 > FILE && chmod 600 FILE"

// Read reads a key file: 64 hex characters (surrounding whitespace
// ignored) or exactly 32 raw bytes.
func Read(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(raw); len(t) == 2*Size {
		key := make([]byte, Size)
		if _, err := hex.Decode(key, t); err == nil {
			return key, nil
		}
		if len(raw) != Size {
			return nil, fmt.Errorf("%w: %s: 64 characters but not hex", ErrInvalid, path)
		}
	}
	if len(raw) == Size {
		if _, err := hex.DecodeString(string(raw)); err == nil {
			// A random key is never all hex digits: this is a short hex key.
			return nil, fmt.Errorf("%w: %s: 32 hex characters (16 bytes); want 64 hex characters", ErrInvalid, path)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("%w: %s: want 64 hex characters or %d raw bytes, got %d bytes",
		ErrInvalid, path, Size, len(raw))
}
