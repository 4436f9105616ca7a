package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestSweepLeavesCachesAlone: a pass over the store reads manifests and
// tags without making them hot, so it does not push out what pulls read.
func TestSweepLeavesCachesAlone(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	body := []byte(`{"schemaVersion":2}`)
	d := stSHA256(body)
	b := s.NewBatch()
	if err := b.PutManifest(d, &Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutImage(LocalKey("app"), d, Image{PushedAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTag("", "app", "v1", Tag{Digest: d, FetchedAt: time.Unix(2, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// Start cold: what the batch cached is dropped.
	s.hot.Clear()
	s.tags.forget(nil)
	s.hot.Wait()

	if m, err := s.Sweep().Manifest(ctx, d); err != nil || string(m.Body) != string(body) {
		t.Fatalf("Sweep().Manifest = %v, %v", m, err)
	}
	if m, err := s.Sweep().RepoManifest(ctx, LocalKey("app"), d); err != nil || string(m.Body) != string(body) {
		t.Fatalf("Sweep().RepoManifest = %v, %v", m, err)
	}
	var tags []string
	err := s.Sweep().Tags(ctx, "", "app", func(tag string, tg Tag) error {
		if tg.Digest != d || !tg.FetchedAt.Equal(time.Unix(2, 0)) {
			t.Errorf("tag %s: %+v", tag, tg)
		}
		tags = append(tags, tag)
		return nil
	})
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("Sweep().Tags: %v, %v", tags, err)
	}
	s.hot.Wait()
	if _, ok := s.hot.Get(d); ok {
		t.Errorf("a sweep made the manifest hot")
	}
	if n := s.tags.len(); n != 0 {
		t.Errorf("a sweep cached %d tags", n)
	}
	// A pull does make it hot.
	if _, err := s.GetManifest(ctx, d); err != nil {
		t.Fatal(err)
	}
	s.hot.Wait()
	if _, ok := s.hot.Get(d); !ok {
		t.Errorf("GetManifest did not make the manifest hot")
	}
}

// TestSweepImagesRepoKeys: records of consecutive repositories, including
// one whose name extends another's, each come with their own key.
func TestSweepImagesRepoKeys(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	repos := []RepoKey{CachedKey("hub", "a"), CachedKey("hub", "a/b"), LocalKey("a"), LocalKey("a/b"), LocalKey("ab")}
	b := s.NewBatch()
	for _, r := range repos {
		for i := 0; i < 2; i++ {
			if err := b.PutImage(r, stDigest(i), Image{}); err != nil {
				t.Fatal(err)
			}
			if err := b.Link(r, stDigest(10+i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	var images, links []RepoKey
	if err := s.Sweep().Images(ctx, func(r RepoKey, d string) error {
		images = append(images, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sweep().Links(ctx, func(r RepoKey, d string, linked bool) error {
		links = append(links, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var want []RepoKey
	for _, r := range repos {
		want = append(want, r, r)
	}
	if !slices.Equal(images, want) || !slices.Equal(links, want) {
		t.Errorf("images %v\nlinks %v\nwant %v", images, links, want)
	}
}
