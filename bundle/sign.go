package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrSignature is a bundle whose signature is missing, malformed, or not
// made by the expected key.
var ErrSignature = errors.New("bundle signature does not verify")

// PEM block types of the key files berth keygen writes.
const (
	privateKeyType = "BERTH ED25519 PRIVATE KEY"
	publicKeyType  = "BERTH ED25519 PUBLIC KEY"
)

// Signature is berth-signature.json: an Ed25519 signature over index.json.
type Signature struct {
	Algorithm string `json:"algorithm"`
	// KeyID is the first 16 hex digits of the public key's SHA-256.
	KeyID     string `json:"keyId"`
	Signature string `json:"signature"`
}

// GenerateKey returns a new key pair as PEM files.
func GenerateKey() (private, public []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyType, Bytes: priv.Seed()}),
		pem.EncodeToMemory(&pem.Block{Type: publicKeyType, Bytes: pub}), nil
}

// ParsePrivateKey reads a private key file.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	p, _ := pem.Decode(b)
	if p == nil || p.Type != privateKeyType || len(p.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("not a private key made by berth keygen (a PEM %q block)", privateKeyType)
	}
	return ed25519.NewKeyFromSeed(p.Bytes), nil
}

// ParsePublicKey reads a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	p, _ := pem.Decode(b)
	if p == nil || p.Type != publicKeyType || len(p.Bytes) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not a public key made by berth keygen (a PEM %q block)", publicKeyType)
	}
	return ed25519.PublicKey(p.Bytes), nil
}

// KeyID names a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns berth-signature.json for index.
func Sign(key ed25519.PrivateKey, index []byte) []byte {
	s := Signature{Algorithm: "ed25519", KeyID: KeyID(key.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, index))}
	b, _ := json.Marshal(s)
	return b
}

// Verify checks sig (berth-signature.json, nil when the bundle has none)
// over index with pub.
func Verify(pub ed25519.PublicKey, index, sig []byte) error {
	if sig == nil {
		return fmt.Errorf("%w: the bundle is not signed (export it with --sign)", ErrSignature)
	}
	var s Signature
	if err := json.Unmarshal(sig, &s); err != nil || s.Algorithm != "ed25519" {
		return fmt.Errorf("%w: %s is not an ed25519 signature", ErrSignature, SignatureFile)
	}
	raw, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || !ed25519.Verify(pub, index, raw) {
		if s.KeyID != KeyID(pub) {
			return fmt.Errorf("%w: it was signed by key %s, not by the key given (%s)", ErrSignature, s.KeyID, KeyID(pub))
		}
		return fmt.Errorf("%w: index.json was changed after it was signed", ErrSignature)
	}
	return nil
}

// VerifyAny checks sig over index with whichever of keys made it.
func VerifyAny(keys []ed25519.PublicKey, index, sig []byte) error {
	var first error
	for _, k := range keys {
		err := Verify(k, index, sig)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	if len(keys) > 1 && sig != nil {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = KeyID(k)
		}
		return fmt.Errorf("%w: it was not signed by any of the keys %v (or index.json was changed after it was signed)", ErrSignature, ids)
	}
	return first
}
