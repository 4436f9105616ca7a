package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestReadCacheGenerations: a value read before a write began is not
// cached; one read after the write's last step is.
func TestReadCacheGenerations(t *testing.T) {
	var c readCache[string]
	k := []byte("img/app\x00d")
	_, _, gen := c.get(k)
	c.drop(k) // a writer's first step
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
	c.drop(k)
	_, _, gen = c.get(k)
	c.cacheRead(k, "read mid-write", gen)
	c.drop(k)
	if v, ok, _ := c.get(k); ok {
		t.Fatalf("the write's second step left %q cached", v)
	}
}

// TestReadCacheForgetPrefix drops the keys under a prefix only.
func TestReadCacheForgetPrefix(t *testing.T) {
	var c readCache[int]
	for i, k := range []string{"img/a\x00d1", "img/a\x00d2", "img/ab\x00d1", "tag/a"} {
		_, _, gen := c.get([]byte(k))
		c.cacheRead([]byte(k), i, gen)
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

// TestTagWritesLeaveNothingCached: every write of a tag leaves it out of
// the cache, so of two racing writes the older cannot stay cached; the
// next GET reads what was committed last, once.
func TestTagWritesLeaveNothingCached(t *testing.T) {
	s := stOpen(t, t.TempDir())
	ctx := context.Background()
	key := tagKey("hub", "library/a", "v1")
	var reads atomic.Int32
	h := func(k []byte) {
		if bytes.Equal(k, key) {
			reads.Add(1)
		}
	}
	s.readHook.Store(&h)
	digest := func(i int) string { return fmt.Sprintf("sha256:%064x", i) }
	for i, write := range []func(Tag) error{
		func(t Tag) error { return s.PutTag(ctx, "hub", "library/a", "v1", t) },
		func(t Tag) error {
			b := s.NewBatch()
			defer b.Close()
			if err := b.PutTag("hub", "library/a", "v1", t); err != nil {
				return err
			}
			return b.Commit()
		},
	} {
		if err := write(Tag{Digest: digest(i)}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.tags.get(key); ok {
			t.Errorf("write %d left the tag cached", i)
		}
		reads.Store(0)
		for range 2 {
			got, err := s.GetTag(ctx, "hub", "library/a", "v1")
			if err != nil || got.Digest != digest(i) {
				t.Fatalf("write %d: GET %v %v, want %s", i, got.Digest, err, digest(i))
			}
		}
		if n := reads.Load(); n != 1 {
			t.Errorf("write %d: two GETs read pebble %d times, want 1", i, n)
		}
	}
	for i, del := range []func() error{
		func() error { return s.DeleteTag(ctx, "hub", "library/a", "v1") },
		func() error {
			b := s.NewBatch()
			defer b.Close()
			if err := b.DeleteTag("hub", "library/a", "v1"); err != nil {
				return err
			}
			return b.Commit()
		},
	} {
		if _, err := s.GetTag(ctx, "hub", "library/a", "v1"); err != nil && i == 0 {
			t.Fatal(err)
		}
		if err := del(); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.tags.get(key); ok {
			t.Errorf("delete %d left the tag cached", i)
		}
		if _, err := s.GetTag(ctx, "hub", "library/a", "v1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete %d: GET %v, want ErrNotFound", i, err)
		}
	}
}
