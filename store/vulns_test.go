package store

import (
	"context"
	"errors"
	"testing"
)

func TestVulnKeyEncoding(t *testing.T) {
	for _, k := range []VulnKey{
		{Version: 1, Ecosystem: "Debian:12", Package: "openssl", ID: "DEBIAN-CVE-2023-5678"},
		{Version: 1 << 40, Ecosystem: "Maven", Package: "org.apache.logging.log4j:log4j-core", ID: "GHSA-jfh8-c2jp-5v3q"},
		{Version: 256, Ecosystem: "npm", Package: "@scope/pkg", ID: "GHSA-1"}, // a version byte of 0
	} {
		got, err := ParseVulnKey(k.Encode())
		if err != nil || got != k {
			t.Errorf("ParseVulnKey(%q) = %+v, %v; want %+v", k.Encode(), got, err, k)
		}
	}
	for _, bad := range []string{"vul/", "vul/12345678", "vul/\x00\x00\x00\x00\x00\x00\x00\x01eco\x00name", "tag/x"} {
		if k, err := ParseVulnKey([]byte(bad)); err == nil {
			t.Errorf("ParseVulnKey(%q) = %+v, want an error", bad, k)
		}
	}
}

// TestVulnVersionCrash writes a version and never publishes it, as a
// process killed during an import does: after a restart the old version is
// served, and the next version drops the half-written one.
func TestVulnVersionCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stOpenClose(t, dir, func(s *Store) {
		if _, _, err := s.CurrentVuln(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("CurrentVuln of a new store: %v, want ErrNotFound", err)
		}
		w, err := s.NewVulnVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, "Go", "golang.org/x/text", "GO-1", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if old, err := w.Publish(ctx, []byte(`{"v":1}`)); err != nil || old != 0 {
			t.Fatalf("Publish: %d, %v", old, err)
		}
		w2, err := s.NewVulnVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w2.Put(ctx, "Go", "golang.org/x/text", "GO-2", []byte("v2")); err != nil {
			t.Fatal(err)
		}
		if err := w2.flush(); err != nil { // the crash: written, never published
			t.Fatal(err)
		}
	})
	s := stOpen(t, dir)
	v, info, err := s.CurrentVuln(ctx)
	if err != nil || v != 1 || string(info) != `{"v":1}` {
		t.Fatalf("CurrentVuln after the crash = %d %s %v, want version 1", v, info, err)
	}
	if ids := vulnIDs(t, s, 2); len(ids) != 1 {
		t.Fatalf("the half-written version holds %v before the next import", ids)
	}
	w, err := s.NewVulnVersion(ctx)
	if err != nil || w.Version() != 2 {
		t.Fatalf("NewVulnVersion: %v, %v", w, err)
	}
	defer w.Abort(ctx)
	if ids := vulnIDs(t, s, 2); len(ids) != 0 {
		t.Fatalf("the half-written version was not dropped: %v", ids)
	}
	if ids := vulnIDs(t, s, 1); len(ids) != 1 || ids[0] != "GO-1" {
		t.Fatalf("the served version lost entries: %v", ids)
	}
}

func vulnIDs(t *testing.T, s *Store, version uint64) []string {
	t.Helper()
	var ids []string
	if err := s.ScanVulns(context.Background(), version, "Go", "golang.org/x/text", func(id string, _ []byte) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}
