package store

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestRepoKeyEncoding(t *testing.T) {
	tests := []struct {
		key     RepoKey
		encoded string
	}{
		{LocalKey("private/app"), "private/app"},
		{LocalKey("app"), "app"},
		{CachedKey("docker-hub", "library/alpine"), "\x01docker-hub/library/alpine"},
		{CachedKey("ghcr", "org/team/tool"), "\x01ghcr/org/team/tool"},
	}
	for _, tt := range tests {
		if got := tt.key.Encode(); got != tt.encoded {
			t.Errorf("%v.Encode() = %q, want %q", tt.key, got, tt.encoded)
		}
		got, err := ParseRepoKey(tt.encoded)
		if err != nil || got != tt.key {
			t.Errorf("ParseRepoKey(%q) = %v, %v; want %v", tt.encoded, got, err, tt.key)
		}
		if got.Cached() != (tt.key.Upstream != "") {
			t.Errorf("%v.Cached() = %v", got, got.Cached())
		}
	}
	for _, bad := range []string{"", "\x01", "\x01hub", "\x01/name", "\x01hub/"} {
		if k, err := ParseRepoKey(bad); err == nil {
			t.Errorf("ParseRepoKey(%q) = %v, want an error", bad, k)
		}
	}
}

// TestRepoKeyReadsOldRecords writes image and link records byte for byte as
// releases before RepoKey wrote them, and reads them through the typed API:
// existing data directories keep working.
func TestRepoKeyReadsOldRecords(t *testing.T) {
	s := stOpen(t, t.TempDir())
	ctx := context.Background()
	d1, d2 := stDigest(1), stDigest(2)
	pushed := time.Unix(1700000000, 0)
	img := encodeImage(Image{PushedAt: pushed})
	for k, v := range map[string][]byte{
		"img/\x01docker-hub/library/alpine\x00" + d1: img,
		"img/private/app\x00" + d2:                   img,
		"lnk/\x01docker-hub/library/alpine\x00" + d2: putTime([]byte{1}, pushed),
	} {
		if err := s.db.Set([]byte(k), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	hub := CachedKey("docker-hub", "library/alpine")
	if im, err := s.GetImage(ctx, hub, d1); err != nil || !im.PushedAt.Equal(pushed) {
		t.Fatalf("GetImage of the old cached record: %+v, %v", im, err)
	}
	if ims, err := s.ListImages(ctx, LocalKey("private/app")); err != nil || len(ims) != 1 {
		t.Fatalf("ListImages of the old local record: %v, %v", ims, err)
	}
	if linked, _, err := s.LinkState(ctx, hub, d2); err != nil || !linked {
		t.Fatalf("LinkState of the old link: %v, %v", linked, err)
	}
	images := map[RepoKey]string{}
	if err := s.Sweep().Images(ctx, func(repo RepoKey, digest string) error {
		images[repo] = digest
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(images) != 2 || images[hub] != d1 || images[LocalKey("private/app")] != d2 {
		t.Fatalf("swept images %v", images)
	}
	var links []RepoKey
	if err := s.Sweep().Links(ctx, func(repo RepoKey, digest string, linked bool) error {
		links = append(links, repo)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0] != hub {
		t.Fatalf("swept links %v", links)
	}
}
