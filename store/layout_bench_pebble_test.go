//go:build unix

package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ---- (A) chunks inside pebble, value separation on ----

type layoutBenchPebbleStore struct {
	db *pebble.DB
}

func layoutBenchOpenPebbleStore(dir string) (*layoutBenchPebbleStore, error) {
	opts := &pebble.Options{
		// Value separation needs FormatValueSeparation (the newest format).
		FormatMajorVersion: pebble.FormatValueSeparation,
		// 1 MiB values: a memtable large enough that a chunk batch is not a
		// "large batch" (threshold MemTableSize/2) flushed on its own.
		MemTableSize: 64 << 20,
		Logger:       layoutBenchQuietLogger{},
	}
	// Flushes split their output at the L0 target file size (default 2 MiB),
	// and every output table gets its own blob file: raise it so a flushed
	// memtable makes one blob file rather than dozens.
	opts.TargetFileSizes[0] = 64 << 20
	// Layers are already gzip/zstd compressed: do not spend CPU compressing.
	opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	// Value separation is ignored unless columnar blocks are enabled.
	opts.Experimental.EnableColumnarBlocks = func() bool { return true }
	opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           1024, // chunks (1 MiB) always go to blob files
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return &layoutBenchPebbleStore{db: db}, nil
}

func layoutBenchChunkKey(dst []byte, digest string, idx uint64) []byte {
	dst = append(dst[:0], digest...)
	dst = append(dst, '/')
	return binary.BigEndian.AppendUint64(dst, idx)
}

// layoutBenchChunkBounds returns the key range holding the chunks of digest.
func layoutBenchChunkBounds(digest string) (lower, upper []byte) {
	return append([]byte(digest), '/'), append([]byte(digest), '/'+1)
}

func (s *layoutBenchPebbleStore) write(digest string, r io.Reader, size int64, buf []byte) (time.Time, error) {
	h := sha256.New()
	batch := s.db.NewBatch(pebble.WithInitialSizeBytes(2*layoutBenchChunk), pebble.WithMaxRetainedSizeBytes(4*layoutBenchChunk))
	defer batch.Close()
	key := make([]byte, 0, len(digest)+9)
	var total int64
	for idx := uint64(0); ; idx++ {
		n, err := io.ReadFull(r, buf[:layoutBenchChunk])
		if n > 0 {
			h.Write(buf[:n])
			key = layoutBenchChunkKey(key, digest, idx)
			if err := batch.Set(key, buf[:n], nil); err != nil {
				return time.Time{}, err
			}
			if err := batch.Commit(pebble.NoSync); err != nil {
				return time.Time{}, err
			}
			batch.Reset()
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return time.Time{}, err
		}
	}
	if total != size || "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
		// The chunks were already committed under the digest: drop them. There
		// is no rename in this layout; readers rely on the size entry, which
		// is only Set after verification.
		lower, upper := layoutBenchChunkBounds(digest)
		if err := s.db.DeleteRange(lower, upper, pebble.Sync); err != nil {
			return time.Time{}, err
		}
		return time.Time{}, errLayoutBenchDigest
	}
	// The size entry, synced: this also makes all chunks above durable (WAL).
	if err := s.db.Set([]byte(digest), binary.BigEndian.AppendUint64(nil, uint64(size)), pebble.Sync); err != nil {
		return time.Time{}, err
	}
	ack := time.Now()
	// The chunks must still be written out of the WAL into sstables and blob
	// files; that work is part of the cost of this layout.
	return ack, s.db.Flush()
}

func (s *layoutBenchPebbleStore) copyTo(digest string, w io.Writer) (int64, error) {
	v, closer, err := s.db.Get([]byte(digest))
	if err != nil {
		return 0, err
	}
	size := int64(binary.BigEndian.Uint64(v))
	closer.Close()

	lower, upper := layoutBenchChunkBounds(digest)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	var total int64
	for it.First(); it.Valid(); it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return total, err
		}
		n, err := w.Write(val)
		total += int64(n)
		if err != nil {
			it.Close()
			return total, err
		}
	}
	if err := it.Close(); err != nil {
		return total, err
	}
	if total != size {
		return total, fmt.Errorf("layout bench: read %d bytes, want %d", total, size)
	}
	return total, nil
}

func (s *layoutBenchPebbleStore) close() error { return s.db.Close() }
