package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// VulnKey names one advisory's entry for one package in one version of the
// vulnerability database (package vulndb): vul/<version (8)><ecosystem>
// \x00<package>\x00<id>. The version comes first, so one version is one
// key range, built beside the one served and dropped in one DeleteRange.
type VulnKey struct {
	Version   uint64
	Ecosystem string
	Package   string
	ID        string
}

// Encode is the key's form in pebble.
func (k VulnKey) Encode() []byte {
	b := binary.BigEndian.AppendUint64(append([]byte(nil), prefixVuln...), k.Version)
	return append(b, join(nil, k.Ecosystem, k.Package, k.ID)...)
}

// ParseVulnKey reads what Encode wrote.
func ParseVulnKey(b []byte) (VulnKey, error) {
	rest, ok := bytes.CutPrefix(b, prefixVuln)
	if !ok || len(rest) < 8 {
		return VulnKey{}, fmt.Errorf("vulnerability key %q: does not start with vul/<version>", b)
	}
	parts := strings.Split(string(rest[8:]), "\x00")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return VulnKey{}, fmt.Errorf("vulnerability key %q: not <ecosystem>\\0<package>\\0<id>", b)
	}
	return VulnKey{Version: binary.BigEndian.Uint64(rest), Ecosystem: parts[0], Package: parts[1], ID: parts[2]}, nil
}

func (k VulnKey) check() error {
	for _, s := range []string{k.Ecosystem, k.Package, k.ID} {
		if s == "" || strings.ContainsRune(s, 0) {
			return fmt.Errorf("vulnerability key %q/%q/%q: parts must be non-empty and hold no NUL", k.Ecosystem, k.Package, k.ID)
		}
	}
	return nil
}

// vulnVersionPrefix is the prefix of every entry of one version.
func vulnVersionPrefix(version uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixVuln...), version)
}

// vulnPackagePrefix is the prefix of a package's entries in one version.
func vulnPackagePrefix(version uint64, ecosystem, name string) []byte {
	return append(append(vulnVersionPrefix(version), join(nil, ecosystem, name)...), 0)
}

// vulnCurrentKey holds the version served; vulnInfoKey(v) what the
// importer recorded about version v.
var vulnCurrentKey = append(append([]byte(nil), prefixVulnMeta...), "current"...)

func vulnInfoKey(version uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append([]byte(nil), prefixVulnMeta...), "info/"...), version)
}

// vulnBatchBytes is how large a batch of an import grows before it is
// committed.
const vulnBatchBytes = 4 << 20

// VulnWriter writes one new version of the vulnerability database beside
// the one served. Nothing reads it until Publish.
type VulnWriter struct {
	s       *Store
	version uint64
	b       *pebble.Batch
}

// NewVulnVersion starts a new version: the one after the version served.
// Versions a crash left half-written (neither served nor published) are
// dropped first.
func (s *Store) NewVulnVersion(ctx context.Context) (*VulnWriter, error) {
	cur, _, err := s.CurrentVuln(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := s.dropVulnVersionsExcept(ctx, cur); err != nil {
		return nil, err
	}
	return &VulnWriter{s: s, version: cur + 1, b: s.db.NewBatch()}, nil
}

// Version is the version being written.
func (w *VulnWriter) Version() uint64 { return w.version }

// Put writes one entry of the new version. The batches are not synced:
// Publish's synced write makes every earlier write of the log durable.
func (w *VulnWriter) Put(ctx context.Context, ecosystem, name, id string, value []byte) error {
	k := VulnKey{Version: w.version, Ecosystem: ecosystem, Package: name, ID: id}
	if err := k.check(); err != nil {
		return err
	}
	if err := w.b.Set(k.Encode(), value, nil); err != nil {
		return err
	}
	if w.b.Len() < vulnBatchBytes {
		return nil
	}
	return w.flush()
}

func (w *VulnWriter) flush() error {
	if err := w.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("write vulnerability entries: %w", err)
	}
	w.b.Close()
	w.b = w.s.db.NewBatch()
	return nil
}

// Publish makes the new version the one served, with info (the caller's
// record of it), in one synced write: a crash before it leaves the old
// version served. It returns the version replaced (0: none), which the
// caller drops with DropVulnVersion once no reader uses it.
func (w *VulnWriter) Publish(ctx context.Context, info []byte) (uint64, error) {
	defer w.b.Close()
	if err := w.b.Set(vulnInfoKey(w.version), info, nil); err != nil {
		return 0, err
	}
	if err := w.b.Set(vulnCurrentKey, binary.BigEndian.AppendUint64(nil, w.version), nil); err != nil {
		return 0, err
	}
	if err := w.b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("publish vulnerability database version %d: %w", w.version, err)
	}
	return w.version - 1, nil
}

// Abort drops what was written of the new version.
func (w *VulnWriter) Abort(ctx context.Context) error {
	w.b.Close()
	return w.s.DropVulnVersion(ctx, w.version)
}

// CurrentVuln returns the version served and its info, or ErrNotFound
// when no version was ever published.
func (s *Store) CurrentVuln(ctx context.Context) (uint64, []byte, error) {
	v, err := s.get(vulnCurrentKey)
	if err != nil {
		return 0, nil, err
	}
	if len(v) != 8 {
		return 0, nil, fmt.Errorf("vulnerability database pointer: corrupt record (%d bytes)", len(v))
	}
	version := binary.BigEndian.Uint64(v)
	info, err := s.get(vulnInfoKey(version))
	if err != nil {
		return 0, nil, fmt.Errorf("vulnerability database version %d: info: %w", version, err)
	}
	return version, info, nil
}

// DropVulnVersion deletes a version's entries and info. Not synced: a
// crash that forgets the delete leaves a version NewVulnVersion drops.
func (s *Store) DropVulnVersion(ctx context.Context, version uint64) error {
	p := vulnVersionPrefix(version)
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(p, upperBound(p), nil); err != nil {
		return err
	}
	if err := b.Delete(vulnInfoKey(version), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// dropVulnVersionsExcept deletes every version but keep.
func (s *Store) dropVulnVersionsExcept(ctx context.Context, keep uint64) error {
	var stale []uint64
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefixVuln, UpperBound: upperBound(prefixVuln)})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		k, err := ParseVulnKey(it.Key())
		if err != nil {
			it.Close()
			return err
		}
		if k.Version != keep {
			stale = append(stale, k.Version)
		}
		valid = it.SeekGE(vulnVersionPrefix(k.Version + 1))
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, v := range stale {
		if err := s.DropVulnVersion(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// ScanVulns calls fn with the id and value of every entry of a package in
// one version, in id order. The value is valid only during the call.
func (s *Store) ScanVulns(ctx context.Context, version uint64, ecosystem, name string, fn func(id string, value []byte) error) error {
	if ecosystem == "" || name == "" || strings.ContainsRune(ecosystem+name, 0) {
		return nil // no such key can exist
	}
	return s.scan(ctx, vulnPackagePrefix(version, ecosystem, name), func(k, v []byte) error {
		return fn(string(k), v)
	})
}
