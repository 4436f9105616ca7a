package registry

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strings"
)

// Digest is a content digest, "<algorithm>:<hex>", already validated.
// Only sha256 and sha512 are accepted, with lower-case hex of the exact length.
type Digest string

// ParseDigest parses s strictly.
func ParseDigest(s string) (Digest, error) {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok {
		return "", ErrDigestInvalid("digest " + quoteTrunc(s) + " has no algorithm")
	}
	var want int
	switch alg {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	default:
		return "", ErrDigestInvalid("digest algorithm " + quoteTrunc(alg) + " is not supported (sha256, sha512)")
	}
	if len(hex) != want {
		return "", ErrDigestInvalid("digest " + quoteTrunc(s) + " has the wrong length for " + alg)
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", ErrDigestInvalid("digest " + quoteTrunc(s) + " is not lower-case hex")
		}
	}
	return Digest(s), nil
}

// Algorithm returns the part before the colon.
func (d Digest) Algorithm() string { a, _, _ := strings.Cut(string(d), ":"); return a }

// Hex returns the part after the colon.
func (d Digest) Hex() string { _, h, _ := strings.Cut(string(d), ":"); return h }

func (d Digest) String() string { return string(d) }

// NewHash returns a hash for the digest's algorithm.
func (d Digest) NewHash() hash.Hash {
	if d.Algorithm() == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// IsDigest reports whether ref looks like a digest rather than a tag.
func IsDigest(ref string) bool { return strings.Contains(ref, ":") }

// FromBytes computes the sha256 digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest("sha256:" + hexString(sum[:]))
}

// Verify reports whether b hashes to d.
func (d Digest) Verify(b []byte) bool {
	h := d.NewHash()
	h.Write(b)
	return d.Hex() == hexString(h.Sum(nil))
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, len(b)*2)
	for i, c := range b {
		out[2*i] = digits[c>>4]
		out[2*i+1] = digits[c&0xf]
	}
	return string(out)
}

func quoteTrunc(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return `"` + s + `"`
}
