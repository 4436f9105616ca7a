package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// A store written before its pebble options had bloom filters (pebble's
// defaults) opens and reads as before; the tables written from then on
// carry a filter, the older ones are read without one.
func TestOpenStoreWrittenWithoutFilters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	body := []byte(`{"schemaVersion":2}`)
	digest := stSHA256(body)
	fetched := time.Unix(1700000000, 0).UTC()
	old, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := encodeManifest(&Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	b := old.NewBatch()
	b.Set(tagKey("", "app", "v1"), encodeTag(Tag{Digest: digest, FetchedAt: fetched}), nil)
	b.Set(manifestKey(digest), rec, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := old.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("open a store written without filters: %v", err)
	}
	defer s.Close()
	tag, err := s.GetTag(ctx, "", "app", "v1")
	if err != nil || tag.Digest != digest || !tag.FetchedAt.Equal(fetched) {
		t.Fatalf("GetTag = %+v, %v; want %s fetched at %s", tag, err, digest, fetched)
	}
	m, err := s.GetManifest(ctx, digest)
	if err != nil || string(m.Body) != string(body) {
		t.Fatalf("GetManifest = %v, %v", m, err)
	}
	if _, err := s.GetTag(ctx, "", "app", "v2"); err != ErrNotFound {
		t.Fatalf("GetTag of a missing tag: %v, want ErrNotFound", err)
	}
	if err := s.PutTag(ctx, "", "app", "v2", Tag{Digest: digest, FetchedAt: fetched}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	want := bloom.FilterPolicy(bloomBitsPerKey).Name()
	var with, without int
	for _, level := range levels {
		for _, f := range level {
			if f.Properties.FilterPolicyName == want {
				with++
			} else {
				without++
			}
		}
	}
	if with != 1 || without != 1 {
		t.Fatalf("tables with a %s filter: %d, without: %d; want the new table with one and the old one without", want, with, without)
	}
}
