package store

import (
	"fmt"
	"testing"
)

// TestReadCacheGenerations: a value read before a write began is not
// cached; one read after the write's last step is.
func TestReadCacheGenerations(t *testing.T) {
	var c readCache[string]
	k := []byte("img/app\x00d")
	_, _, gen := c.get(k)
	c.set(k, "", false) // a writer's first step
	c.cacheRead(k, "old", gen)
	if v, ok, _ := c.get(k); ok {
		t.Fatalf("a read that raced a write was cached: %q", v)
	}
	_, _, gen = c.get(k)
	c.cacheRead(k, "new", gen)
	if v, ok, _ := c.get(k); !ok || v != "new" {
		t.Fatalf("a read after the write: %q %v, want cached", v, ok)
	}
	// A read that began after the first step and offered its value
	// before the second is dropped by the second.
	c.set(k, "", false)
	_, _, gen = c.get(k)
	c.cacheRead(k, "read mid-write", gen)
	c.set(k, "", false)
	if v, ok, _ := c.get(k); ok {
		t.Fatalf("the write's second step left %q cached", v)
	}
}

// TestReadCacheForgetPrefix drops the keys under a prefix only.
func TestReadCacheForgetPrefix(t *testing.T) {
	var c readCache[int]
	for i, k := range []string{"img/a\x00d1", "img/a\x00d2", "img/ab\x00d1", "tag/a"} {
		c.set([]byte(k), i, true)
	}
	c.forget([]byte("img/a\x00"))
	for k, want := range map[string]bool{"img/a\x00d1": false, "img/a\x00d2": false, "img/ab\x00d1": true, "tag/a": true} {
		if _, ok, _ := c.get([]byte(k)); ok != want {
			t.Errorf("%q cached: %v, want %v", k, ok, want)
		}
	}
}

// TestReadCacheBounded starts over at maxCached entries.
func TestReadCacheBounded(t *testing.T) {
	var c readCache[int]
	for i := range maxCached + 10 {
		_, _, gen := c.get(nil)
		c.cacheRead(fmt.Appendf(nil, "k%d", i), i, gen)
	}
	if n := c.len(); n != 10 {
		t.Fatalf("%d entries after %d reads; want the last 10", n, maxCached+10)
	}
}
