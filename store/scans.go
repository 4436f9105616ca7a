package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

var prefixScan = []byte("scn/")

func scanKey(digest string) []byte { return join(prefixScan, digest) }

func checkDigestKey(digest string) error {
	if digest == "" || strings.ContainsRune(digest, 0) {
		return fmt.Errorf("invalid digest %q", digest)
	}
	return nil
}

// PutScan stores the latest scan record of a manifest (package scan's
// JSON), replacing the one before. It is synced. The record lists the
// image's packages: it is encrypted (crypt_manifest.go's record format,
// bound to the digest) when encryption covers the image (local is a
// local repository's, or the scope is all), or a record of the digest is
// encrypted already.
func (s *Store) PutScan(ctx context.Context, digest string, record []byte, local bool) error {
	if err := checkDigestKey(digest); err != nil {
		return err
	}
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	v := record
	if s.enc != nil {
		seal := local || s.encryptCached()
		if !seal {
			old, err := s.get(scanKey(digest))
			seal = err == nil && sealedManifest(old)
		}
		if seal {
			var err error
			if v, err = s.sealRecord(scanAD(digest), record); err != nil {
				return err
			}
		}
	}
	return s.db.Set(scanKey(digest), v, pebble.Sync)
}

// GetScan returns the scan record of a manifest, or ErrNotFound.
func (s *Store) GetScan(ctx context.Context, digest string) ([]byte, error) {
	if err := checkDigestKey(digest); err != nil {
		return nil, err
	}
	v, err := s.get(scanKey(digest))
	if err != nil {
		return nil, err
	}
	return s.openScan(digest, v)
}

func (s *Store) openScan(digest string, v []byte) ([]byte, error) {
	if !sealedManifest(v) {
		return v, nil // JSON: never starts with the mark
	}
	return s.openSealedRecord("scan record "+digest, scanAD(digest), v)
}

// ListScans calls fn for every scan record (the digest and the record,
// both valid only during the call), in digest order. A record that cannot
// be decrypted is logged and passed as nil: the scanner scans the image
// again when asked.
func (s *Store) ListScans(ctx context.Context, fn func(digest string, record []byte) error) error {
	return s.scan(ctx, prefixScan, func(k, v []byte) error {
		d := string(k)
		plain, err := s.openScan(d, v)
		if err != nil {
			s.log.Warn("scan record unreadable", zap.String("digest", d), zap.Error(err))
		}
		return fn(d, plain)
	})
}
