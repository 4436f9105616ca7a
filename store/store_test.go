package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// stOpen opens a store in dir that is closed when the test ends.
func stOpen(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, testOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// stOpenClose opens the store in dir, runs f and closes it again, for tests
// that reopen a directory.
func stOpenClose(t testing.TB, dir string, f func(s *Store)) {
	t.Helper()
	s, err := Open(context.Background(), dir, testOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	f(s)
}

func stSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func stSHA512(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(sum[:])
}

func stDigest(i int) string { return stSHA256([]byte(fmt.Sprint("manifest ", i))) }

func TestTags(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	put := func(ns, repo, tag string, i int) {
		t.Helper()
		if err := s.PutTag(ctx, ns, repo, tag, Tag{Digest: stDigest(i), FetchedAt: at.Add(time.Duration(i))}); err != nil {
			t.Fatalf("PutTag(%s, %s, %s): %v", ns, repo, tag, err)
		}
	}
	put("hub", "a", "v2", 1)
	put("hub", "a", "latest", 2)
	put("hub", "a", "v1", 3)
	put("hub", "a", "V0", 4)
	put("hub", "a/b", "x", 5)
	put("hub", "ab", "y", 6)
	put("hub", "a.b", "w", 7)
	put("ghcr", "a", "z", 8)
	put("hub", "library/a", "q", 9)

	tests := []struct {
		name     string
		ns, repo string
		want     []string
	}{
		{name: "sorted", ns: "hub", repo: "a", want: []string{"V0", "latest", "v1", "v2"}},
		{name: "nested repo", ns: "hub", repo: "a/b", want: []string{"x"}},
		{name: "longer name", ns: "hub", repo: "ab", want: []string{"y"}},
		{name: "dotted name", ns: "hub", repo: "a.b", want: []string{"w"}},
		{name: "other namespace", ns: "ghcr", repo: "a", want: []string{"z"}},
		{name: "nested under library", ns: "hub", repo: "library/a", want: []string{"q"}},
		{name: "unknown repo", ns: "hub", repo: "none", want: nil},
		{name: "parent of nested repo", ns: "hub", repo: "library", want: nil},
		{name: "unknown namespace", ns: "quay", repo: "a", want: nil},
		{name: "namespace prefix", ns: "hu", repo: "a", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListTags(ctx, tt.ns, tt.repo)
			if err != nil {
				t.Fatalf("ListTags: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListTags(%s, %s) = %q, want %q", tt.ns, tt.repo, got, tt.want)
			}
		})
	}

	t.Run("get", func(t *testing.T) {
		got, err := s.GetTag(ctx, "hub", "a", "v1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != stDigest(3) || !got.FetchedAt.Equal(at.Add(3)) {
			t.Errorf("GetTag = %+v, want %s at %s", got, stDigest(3), at.Add(3))
		}
		for _, k := range [][3]string{{"hub", "a", "v3"}, {"hub", "ab", "v1"}, {"ghcr", "a", "v1"}, {"hub", "a/b", "v1"}} {
			if _, err := s.GetTag(ctx, k[0], k[1], k[2]); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetTag(%q) = %v, want ErrNotFound", k, err)
			}
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		put("hub", "a", "latest", 10)
		got, err := s.GetTag(ctx, "hub", "a", "latest")
		if err != nil || got.Digest != stDigest(10) {
			t.Errorf("GetTag after overwrite = %+v, %v", got, err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteTag(ctx, "hub", "a", "v1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTag(ctx, "hub", "a", "v1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetTag after delete: %v", err)
		}
		if err := s.DeleteTag(ctx, "hub", "a", "never"); err != nil {
			t.Errorf("deleting a missing tag: %v", err)
		}
		got, _ := s.ListTags(ctx, "hub", "a")
		if want := []string{"V0", "latest", "v2"}; !slices.Equal(got, want) {
			t.Errorf("ListTags after delete = %q, want %q", got, want)
		}
		if got, _ := s.ListTags(ctx, "hub", "a/b"); !slices.Equal(got, []string{"x"}) {
			t.Errorf("delete touched a/b: %q", got)
		}
	})
}

func TestTagFetchedAt(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	tests := []struct {
		name string
		at   time.Time
	}{
		{name: "nanoseconds", at: time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{name: "one nanosecond", at: time.Unix(1_700_000_000, 1)},
		{name: "other zone", at: time.Date(2024, 2, 29, 12, 0, 0, 5, time.FixedZone("x", -7*3600))},
		{name: "now, with monotonic clock", at: time.Now()},
		{name: "epoch", at: time.Unix(0, 0)},
		{name: "before epoch", at: time.Unix(-86400, 42)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := fmt.Sprint("t", i)
			if err := s.PutTag(ctx, "ns", "repo", tag, Tag{Digest: stDigest(i), FetchedAt: tt.at}); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetTag(ctx, "ns", "repo", tag)
			if err != nil {
				t.Fatal(err)
			}
			if !got.FetchedAt.Equal(tt.at) || got.FetchedAt.UnixNano() != tt.at.UnixNano() {
				t.Errorf("FetchedAt = %s, want %s", got.FetchedAt.Format(time.RFC3339Nano), tt.at.Format(time.RFC3339Nano))
			}
			if got.Digest != stDigest(i) {
				t.Errorf("Digest = %s, want %s", got.Digest, stDigest(i))
			}
		})
	}
}

func TestTagsPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	at := time.Unix(1_750_000_000, 987654321)
	stOpenClose(t, dir, func(s *Store) {
		if err := s.PutTag(ctx, "hub", "library/nginx", "1.27", Tag{Digest: stDigest(1), FetchedAt: at}); err != nil {
			t.Fatal(err)
		}
	})
	s := stOpen(t, dir)
	got, err := s.GetTag(ctx, "hub", "library/nginx", "1.27")
	if err != nil || got.Digest != stDigest(1) || !got.FetchedAt.Equal(at) {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

func TestPutManifest(t *testing.T) {
	ctx := context.Background()
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	big := bytes.Repeat([]byte("x"), 3<<20)
	tests := []struct {
		name      string
		digest    string
		m         Manifest
		wantErr   error // nil: stored
		wantOther bool  // an error that is not a mismatch
	}{
		{name: "sha256", digest: stSHA256(body), m: Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body}},
		{name: "sha512", digest: stSHA512(body), m: Manifest{MediaType: "application/vnd.oci.image.index.v1+json", Body: body}},
		{name: "no media type", digest: stSHA256([]byte("{}")), m: Manifest{Body: []byte("{}")}},
		{name: "large", digest: stSHA256(big), m: Manifest{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Body: big}},
		{name: "body does not match", digest: stSHA256([]byte("other")), m: Manifest{MediaType: "x", Body: body}, wantErr: ErrDigestMismatch},
		{name: "sha512 body does not match", digest: stSHA512([]byte("other")), m: Manifest{Body: body}, wantErr: ErrDigestMismatch},
		{name: "no algorithm", digest: strings.TrimPrefix(stSHA256(body), "sha256:"), m: Manifest{Body: body}, wantOther: true},
		{name: "unknown algorithm", digest: "md5:" + strings.TrimPrefix(stSHA256(body), "sha256:"), m: Manifest{Body: body}, wantOther: true},
		{name: "upper-case hex", digest: strings.ToUpper(stSHA256(body)), m: Manifest{Body: body}, wantOther: true},
		{name: "short hex", digest: stSHA256(body)[:40], m: Manifest{Body: body}, wantOther: true},
		{name: "not hex", digest: "sha256:" + strings.Repeat("g", 64), m: Manifest{Body: body}, wantOther: true},
		{name: "media type too long", digest: stSHA256(body), m: Manifest{MediaType: strings.Repeat("a", 1<<16), Body: body}, wantOther: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stOpen(t, t.TempDir())
			err := s.PutManifest(ctx, tt.digest, &tt.m)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("PutManifest = %v, want %v", err, tt.wantErr)
				}
			case tt.wantOther:
				if err == nil || errors.Is(err, ErrDigestMismatch) {
					t.Fatalf("PutManifest = %v, want a malformed-input error", err)
				}
			default:
				if err != nil {
					t.Fatalf("PutManifest: %v", err)
				}
				got, err := s.GetManifest(ctx, tt.digest)
				if err != nil {
					t.Fatalf("GetManifest: %v", err)
				}
				if got.MediaType != tt.m.MediaType || !bytes.Equal(got.Body, tt.m.Body) {
					t.Errorf("GetManifest = %q, %d bytes; want %q, %d bytes", got.MediaType, len(got.Body), tt.m.MediaType, len(tt.m.Body))
				}
				return
			}
			if _, err := s.GetManifest(ctx, tt.digest); !errors.Is(err, ErrNotFound) {
				t.Errorf("a refused manifest is visible: GetManifest = %v", err)
			}
			s.hot.Wait()
			if _, err := s.GetManifest(ctx, tt.digest); !errors.Is(err, ErrNotFound) {
				t.Errorf("a refused manifest is in the hot cache: GetManifest = %v", err)
			}
		})
	}
}

// Manifests are in pebble, not only in memory: they survive a restart, and
// are served from pebble when the hot cache does not have them.
func TestManifestsPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	type entry struct {
		digest string
		m      Manifest
	}
	var entries []entry
	for i, mk := range []func([]byte) string{stSHA256, stSHA512} {
		body := []byte(fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i))
		entries = append(entries, entry{mk(body), Manifest{MediaType: fmt.Sprint("application/type", i), Body: body}})
	}
	stOpenClose(t, dir, func(s *Store) {
		for _, e := range entries {
			if err := s.PutManifest(ctx, e.digest, &e.m); err != nil {
				t.Fatal(err)
			}
		}
	})
	s := stOpen(t, dir)
	for _, e := range entries {
		if _, ok := s.hot.Get(e.digest); ok {
			t.Fatalf("%s is hot in a new store", e.digest)
		}
		got, err := s.GetManifest(ctx, e.digest)
		if err != nil {
			t.Fatalf("GetManifest(%s) after reopen: %v", e.digest, err)
		}
		if got.MediaType != e.m.MediaType || !bytes.Equal(got.Body, e.m.Body) {
			t.Errorf("after reopen: %q %s, want %q %s", got.MediaType, got.Body, e.m.MediaType, e.m.Body)
		}
		// A read from pebble warms the cache.
		s.hot.Wait()
		if _, ok := s.hot.Get(e.digest); !ok {
			t.Errorf("%s is not hot after a read", e.digest)
		}
	}
	if _, err := s.GetManifest(ctx, stDigest(99)); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetManifest of an unknown digest: %v", err)
	}
}

// TestExpireUploadsByIdleTime: a session is expired once it has received no
// bytes for maxAge, however old it is.
func TestExpireUploadsByIdleTime(t *testing.T) {
	ctx := context.Background()
	s := stOpen(t, t.TempDir())
	at := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return at }
	u, err := s.CreateUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // three hours old, but never idle for an hour
		at = at.Add(50 * time.Minute)
		if _, err := s.AppendUpload(ctx, u.ID, strings.NewReader("chunk")); err != nil {
			t.Fatal(err)
		}
		if n, err := s.ExpireUploads(ctx, time.Hour); err != nil || n != 0 {
			t.Fatalf("after append %d, 50m after the last: ExpireUploads(1h) = %d, %v; want 0", i+1, n, err)
		}
	}
	at = at.Add(61 * time.Minute)
	if n, err := s.ExpireUploads(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("idle for 61m: ExpireUploads(1h) = %d, %v; want 1", n, err)
	}
	if _, _, err := s.GetUpload(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetUpload after expiry: %v", err)
	}
}
