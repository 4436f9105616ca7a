package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
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
// JSON), replacing the one before. It is synced.
func (s *Store) PutScan(ctx context.Context, digest string, record []byte) error {
	if err := checkDigestKey(digest); err != nil {
		return err
	}
	return s.db.Set(scanKey(digest), record, pebble.Sync)
}

// GetScan returns the scan record of a manifest, or ErrNotFound.
func (s *Store) GetScan(ctx context.Context, digest string) ([]byte, error) {
	if err := checkDigestKey(digest); err != nil {
		return nil, err
	}
	return s.get(scanKey(digest))
}

// ListScans calls fn for every scan record (the digest and the record,
// both valid only during the call), in digest order.
func (s *Store) ListScans(ctx context.Context, fn func(digest string, record []byte) error) error {
	return s.scan(ctx, prefixScan, func(k, v []byte) error { return fn(string(k), v) })
}
