package store

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"go.uber.org/zap"
)

// Pebble's options for the store. Every pull by tag reads three to five
// records from pebble (the repository, the tag, the image and, when not
// hot, the manifest), each from a block of its own; once a store no
// longer fits the block cache, a miss costs a pread, a decompression and
// an allocation.

// memTableBytes is pebble's default memtable size, named here because
// the block cache must hold it twice over (below).
const memTableBytes = 4 << 20

// blockCacheBytes is pebble's block cache. Pebble reserves every memtable
// it holds in it, the mutable one and one kept for reuse after a flush:
// with its default 8 MiB cache and 4 MiB memtables, a store taking
// writes (the access times every pull records, at most once a minute per
// image) had almost no cache left for blocks. Pebble's 8 MiB of blocks
// on top of the two reservations: on the bench's large store, 3 misses a
// pull by tag instead of 9.4 (16 MiB of blocks: 2.3, for 8 MiB more at
// the reclaim passes' peak, when they read every table through it).
const blockCacheBytes = 8<<20 + 2*memTableBytes

// bloomBitsPerKey sizes the bloom filter of every table (about 1% false
// positives at 10 bits a key): a point read skips the tables of the
// levels that do not hold its key instead of reading an index and a
// data block of each. Tables written before filters were configured have
// none and are read as before; compactions rewrite them with one.
const bloomBitsPerKey = 10

// pebbleOptions are the options the store opens pebble with. None keeps
// a store written with other options from opening: a filter is recorded
// per table, the cache and memtables live in memory only.
func pebbleOptions(log *zap.Logger) *pebble.Options {
	o := &pebble.Options{Logger: pebbleLogger{log.Sugar()}, CacheSize: blockCacheBytes, MemTableSize: memTableBytes}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
	return o
}
