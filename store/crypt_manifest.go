package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
)

// Encrypted manifest records. A manifest record of an encrypted repository
// is
//
//	0xff 0xff | version 1 (1) | wrapped data key | nonce (12) | sealed plaintext record
//
// where the plaintext record is what encodeManifest writes (len(mediaType)
// (2) | mediaType | body) and the digest is the additional data of both
// the wrapped key and the body. A plaintext record never starts with
// 0xff 0xff: media types are shorter than 0xffff bytes.
var sealedManifestMark = []byte{0xff, 0xff, 1}

func manifestAD(digest string) []byte { return []byte("berth manifest v1\x00" + digest) }

// scanAD binds an encrypted scan record (scans.go) to its digest.
func scanAD(digest string) []byte { return []byte("berth scan v1\x00" + digest) }

// sealedManifest reports whether a stored manifest record is encrypted.
func sealedManifest(v []byte) bool { return bytes.HasPrefix(v, sealedManifestMark) }

// sealManifest encrypts a plaintext manifest record under a new data key.
func (s *Store) sealManifest(digest string, plain []byte) ([]byte, error) {
	return s.sealRecord(manifestAD(digest), plain)
}

// openManifest decrypts an encrypted manifest record to its plaintext
// record.
func (s *Store) openManifest(digest string, v []byte) ([]byte, error) {
	return s.openSealedRecord("manifest "+digest, manifestAD(digest), v)
}

// sealRecord encrypts a pebble record under a new data key, bound to ad
// (the record's kind and digest), in the format above.
func (s *Store) sealRecord(ad, plain []byte) ([]byte, error) {
	dk := newDataKey()
	a, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	v := append(bytes.Clone(sealedManifestMark), s.enc.current().wrap(dk, ad)...)
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	v = append(v, nonce...)
	return a.Seal(v, nonce, plain, ad), nil
}

// openSealedRecord decrypts what sealRecord wrote; what names the record in
// errors.
func (s *Store) openSealedRecord(what string, ad, v []byte) ([]byte, error) {
	off := len(sealedManifestMark)
	if len(v) < off+wrappedSize+12+tagSize {
		return nil, fmt.Errorf("%w: %s: encrypted record cut short", ErrCorrupt, what)
	}
	if s.enc == nil {
		return nil, fmt.Errorf("%w: %s is encrypted and no encryption key is configured", ErrWrongKey, what)
	}
	wrapped := v[off : off+wrappedSize]
	mk, err := s.enc.byFingerprint(wrappedBy(wrapped))
	if err != nil {
		return nil, err
	}
	dk, err := mk.unwrap(wrapped, ad)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	a, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	nonce := v[off+wrappedSize : off+wrappedSize+12]
	plain, err := a.Open(nil, nonce, v[off+wrappedSize+12:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s fails authentication", ErrCorrupt, what)
	}
	return plain, nil
}

// rewrapRecord rewraps the data key of a record sealRecord wrote when
// `from` wraps it, in place; it reports whether it did.
func (s *Store) rewrapRecord(v, ad []byte, from string) (bool, error) {
	off := len(sealedManifestMark)
	if !sealedManifest(v) || len(v) < off+wrappedSize || wrappedBy(v[off:]) != from {
		return false, nil
	}
	mk, err := s.enc.byFingerprint(from)
	if err != nil {
		return false, err
	}
	dk, err := mk.unwrap(v[off:off+wrappedSize], ad)
	if err != nil {
		return false, err
	}
	copy(v[off:], s.enc.current().wrap(dk, ad))
	return true, nil
}

// manifestRecord is the record to store for m: encrypted when seal is set
// or the digest is stored encrypted already (encryption sticks to a
// digest, as it does for blobs).
func (s *Store) manifestRecord(digest string, m *Manifest, seal bool) ([]byte, error) {
	v, err := encodeManifest(m)
	if err != nil || s.enc == nil {
		return v, err
	}
	if !seal {
		old, err := s.get(manifestKey(digest))
		seal = err == nil && sealedManifest(old)
	}
	if !seal {
		return v, nil
	}
	return s.sealManifest(digest, v)
}
