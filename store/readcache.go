package store

import (
	"strings"
	"sync"
)

// maxCached bounds each readCache; past it the cache starts over.
const maxCached = 100_000

// imageEntryBytes is the heap an entry of the image cache takes, measured
// (TestImageCacheEntryBytes) with the 100-byte key of a cached
// repository's image: its key (112 bytes allocated) and its share of the
// map; its media type is one of the constants (mediaType). So a full
// image cache holds some 16 MB.
const imageEntryBytes = 164

// readCache is an in-memory copy of records read from pebble, by their
// pebble key: tags (store.go) and what a manifest GET needs of image
// records (Store.imageTypes, visible.go). It never answers for a record that
// was written since it was cached, given that its writers follow the
// protocol:
//
//   - before the write, drop(key) (or forget a prefix): the old value
//     goes, and gen moves on;
//   - after the commit, drop (or forget) again.
//
// A reader that missed takes gen with its lookup (get), reads pebble, and
// offers what it read with cacheRead: kept only when no write began since
// the lookup, so a read that raced a write (and may have read the old
// value) is never cached. One that read before a write's commit and
// offered it before the write's second step is dropped by that step.
// The second step drops rather than sets the new value: of two writes of
// one key, the one that committed first could set it last, and the cache
// would keep the older value until the key was written again. The next
// read after a write reads pebble once.
type readCache[V any] struct {
	mu  sync.RWMutex
	m   map[string]V
	gen uint64 // bumped by every drop and forget, under mu
}

// get returns the cached value of key, and the generation a read of
// pebble after a miss hands to cacheRead. key is not retained.
func (c *readCache[V]) get(key []byte) (v V, ok bool, gen uint64) {
	c.mu.RLock()
	v, ok = c.m[string(key)]
	gen = c.gen
	c.mu.RUnlock()
	return v, ok, gen
}

// drop drops key's entry, for a writer of key (before its write and again
// after the commit).
func (c *readCache[V]) drop(key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, string(key))
}

// forget drops the entries whose keys start with prefix, for a writer of
// every key under it.
func (c *readCache[V]) forget(prefix []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	p := string(prefix)
	for k := range c.m {
		if strings.HasPrefix(k, p) {
			delete(c.m, k)
		}
	}
}

// cacheRead caches v, read from pebble at key, unless a write began since
// the lookup that returned gen: it could have made v stale.
func (c *readCache[V]) cacheRead(key []byte, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.storeLocked(key, v)
	}
}

func (c *readCache[V]) storeLocked(key []byte, v V) {
	if c.m == nil || len(c.m) >= maxCached {
		c.m = map[string]V{}
	}
	c.m[string(key)] = v
}

// len is the number of entries cached.
func (c *readCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
