package store

// The cipher of encryption at rest (docs/design.md, "Blob format"): every
// blob and encrypted manifest has its own random 256-bit data key, sealed
// ("wrapped") by the master key with AES-256-GCM; blob files are
// AES-256-GCM in fixed-size chunks. Only the standard library's AES-GCM is
// used.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the length of a master key and of a data key.
const KeySize = 32

// ErrCorrupt is content on disk that fails authentication or its digest:
// it is never served.
var ErrCorrupt = errors.New("content on disk is corrupt")

// ErrWrongKey is a master key that does not match the store.
var ErrWrongKey = errors.New("encryption key does not match the store")

// fpSize is the length of a key fingerprint in records.
const fpSize = 8

// Fingerprint names a master key without revealing it: the first 8 bytes
// of HMAC-SHA256(key, label), in hex. Records name the key that wrapped
// them by it, and messages name key files by it.
func Fingerprint(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("berth key fingerprint v1"))
	return hex.EncodeToString(m.Sum(nil)[:fpSize])
}

// masterKey is a master key ready to wrap and unwrap data keys.
type masterKey struct {
	fp   string // Fingerprint
	raw  [fpSize]byte
	aead cipher.AEAD
}

func newMasterKey(key []byte) (*masterKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, want %d", len(key), KeySize)
	}
	a, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	mk := &masterKey{fp: Fingerprint(key), aead: a}
	hex.Decode(mk.raw[:], []byte(mk.fp))
	return mk, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// wrappedSize is a wrapped data key: fingerprint (8) | nonce (12) | sealed key (32+16).
const wrappedSize = fpSize + 12 + KeySize + 16

// wrap seals dk under the master key, bound to what it encrypts (ad: the
// blob's digest and file id, or the manifest's digest), so a wrapped key
// moved to another record does not open.
func (mk *masterKey) wrap(dk, ad []byte) []byte {
	out := make([]byte, fpSize+12, wrappedSize)
	copy(out, mk.raw[:])
	if _, err := rand.Read(out[fpSize:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return mk.aead.Seal(out, out[fpSize:], dk, ad)
}

// wrappedBy is the fingerprint of the key that wrapped w.
func wrappedBy(w []byte) string { return hex.EncodeToString(w[:fpSize]) }

// unwrap opens w, which mk must have wrapped.
func (mk *masterKey) unwrap(w, ad []byte) ([]byte, error) {
	if len(w) != wrappedSize {
		return nil, fmt.Errorf("wrapped data key is %d bytes, want %d", len(w), wrappedSize)
	}
	dk, err := mk.aead.Open(nil, w[fpSize:fpSize+12], w[fpSize+12:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: a data key does not open under key %s", ErrCorrupt, mk.fp)
	}
	return dk, nil
}

// newDataKey is a fresh random data key.
func newDataKey() []byte {
	dk := make([]byte, KeySize)
	if _, err := rand.Read(dk); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return dk
}

// Blob files. An encrypted blob file is a header and then the plaintext in
// chunks of chunkSize bytes (the last may be shorter, or empty for an
// empty blob), each sealed with AES-256-GCM under the blob's data key:
//
//	header: "BERTHENC" | version 1 (1) | log2(chunkSize) (1) | 0 (6) | file id (16)
//	chunk i: ciphertext (len(plaintext)) | tag (16)
//
// Chunk i's nonce is i (8 bytes, big-endian) | 0 0 0 | final (1 for the
// last chunk, else 0), and the header is its additional data. The data key
// is never used for another file, so counter nonces never repeat; the
// index in the nonce keeps chunks from moving, the final flag keeps a
// file from being cut at a chunk boundary, and the header binds each chunk
// to its file (id) and format.
const (
	chunkShift = 16
	chunkSize  = 1 << chunkShift // plaintext bytes per chunk
	tagSize    = 16
	headerSize = 32
	fileIDSize = 16
	fileMagic  = "BERTHENC"
)

// sealedChunk is the on-disk length of a full chunk.
const sealedChunk = chunkSize + tagSize

// chunks is how many chunks a blob of size bytes has (at least one).
func chunks(size int64) int64 {
	if size <= 0 {
		return 1
	}
	return (size + chunkSize - 1) / chunkSize
}

// sealedLen is the length of the file of a blob of size bytes.
func sealedLen(size int64) int64 { return headerSize + size + chunks(size)*tagSize }

func newHeader(id []byte) [headerSize]byte {
	var h [headerSize]byte
	copy(h[:], fileMagic)
	h[8], h[9] = 1, chunkShift
	copy(h[headerSize-fileIDSize:], id)
	return h
}

func chunkNonce(i int64, final bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n, uint64(i))
	if final {
		n[11] = 1
	}
	return n
}

// blobKeys is the encryption part of a blob record: the file's id and its
// wrapped data key.
type blobKeys struct {
	fileID  []byte
	wrapped []byte
}

// ad is what a blob's wrapped data key is bound to.
func (k blobKeys) ad(digest string) []byte {
	return append([]byte("berth blob key v1\x00"+digest+"\x00"), k.fileID...)
}

// encodedKeysSize is the encryption part's length in a blob record:
// version (1) | file id (16) | wrapped key.
const encodedKeysSize = 1 + fileIDSize + wrappedSize

func (k blobKeys) encode() []byte {
	v := make([]byte, 0, encodedKeysSize)
	v = append(v, 1)
	v = append(v, k.fileID...)
	return append(v, k.wrapped...)
}

func decodeBlobKeys(v []byte) (*blobKeys, error) {
	if len(v) != encodedKeysSize || v[0] != 1 {
		return nil, fmt.Errorf("encryption part of %d bytes, version %d: not one this version reads", len(v), v[0])
	}
	return &blobKeys{fileID: v[1 : 1+fileIDSize], wrapped: v[1+fileIDSize:]}, nil
}
