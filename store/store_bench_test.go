package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

const (
	sbBlobSize  = 64 << 20 // BenchmarkBlobWrite/Read blob size
	sbChunkSize = 1 << 20  // write size, like a fill copying from upstream
)

// sbOpen opens a store in a fresh directory that is closed when the
// benchmark ends.
func sbOpen(b *testing.B, opts Options) *Store {
	b.Helper()
	s, err := Open(context.Background(), b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

// sbBlob returns size pseudo-random (incompressible) bytes and their digest.
func sbBlob(size int, seed byte) ([]byte, string) {
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{seed}).Read(data)
	sum := sha256.Sum256(data)
	return data, "sha256:" + hex.EncodeToString(sum[:])
}

// sbWrite writes and commits one blob.
func sbWrite(b *testing.B, s *Store, digest string, data []byte) {
	w, err := s.NewBlobWriter(context.Background(), digest, int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	for p := data; len(p) > 0; {
		k := min(len(p), sbChunkSize)
		if _, err := w.Write(p[:k]); err != nil {
			w.Abort()
			b.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// sbManifest is a manifest body of roughly the size of a real image
// manifest with a few layers.
func sbManifest(i int) []byte {
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%064x","size":%d},"layers":[`, i, 1000+i)
	for l := 0; l < 8; l++ {
		if l > 0 {
			body += ","
		}
		body += fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064x","size":%d}`, i*100+l, 1<<20+l)
	}
	return []byte(body + "]}")
}

func sbPutManifests(b *testing.B, s *Store, n int) []string {
	b.Helper()
	digests := make([]string, n)
	for i := range digests {
		body := sbManifest(i)
		sum := sha256.Sum256(body)
		digests[i] = "sha256:" + hex.EncodeToString(sum[:])
		if err := s.PutManifest(context.Background(), digests[i], &Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	return digests
}

// BenchmarkBlobWrite is one fill: stream a 64 MiB blob into a BlobWriter in
// 1 MiB writes (hashing as it goes) and commit it (fsync, rename, fsync of
// the directory, synced index entry).
func BenchmarkBlobWrite(b *testing.B) {
	s := sbOpen(b, Options{})
	data, digest := sbBlob(sbBlobSize, 1)
	b.SetBytes(sbBlobSize)
	b.ReportAllocs()
	for b.Loop() {
		sbWrite(b, s, digest, data)
	}
}

// BenchmarkBlobRead serves a committed 64 MiB blob: OpenBlob and copy it
// all (plaintext; encrypted: every chunk opened and the digest checked).
func BenchmarkBlobRead(b *testing.B) {
	b.Run("plain", func(b *testing.B) { sbBlobRead(b, Options{}) })
	b.Run("encrypted", func(b *testing.B) {
		sbBlobRead(b, Options{Encryption: &Encryption{Key: testKey, KeyFile: "bench.key", All: true}})
	})
}

func sbBlobRead(b *testing.B, opts Options) {
	s := sbOpen(b, opts)
	data, digest := sbBlob(sbBlobSize, 2)
	sbWrite(b, s, digest, data)
	ctx := context.Background()
	b.SetBytes(sbBlobSize)
	b.ReportAllocs()
	for b.Loop() {
		f, info, err := s.OpenBlob(ctx, digest)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, f)
		f.Close()
		if err != nil || n != info.Size || n != sbBlobSize {
			b.Fatalf("read %d of %d bytes: %v", n, info.Size, err)
		}
	}
}

// BenchmarkGetTag reads tags from a store holding 10,000 of them.
func BenchmarkGetTag(b *testing.B) {
	s := sbOpen(b, Options{})
	ctx := context.Background()
	const repos, tagsPerRepo = 100, 100
	at := time.Now()
	for r := 0; r < repos; r++ {
		for t := 0; t < tagsPerRepo; t++ {
			d := fmt.Sprintf("sha256:%064x", r*tagsPerRepo+t)
			if err := s.PutTag(ctx, "hub", fmt.Sprint("team/app", r), fmt.Sprint("v", t), Tag{Digest: d, FetchedAt: at}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, t := i%repos, (i/repos)%tagsPerRepo
		i++
		tag, err := s.GetTag(ctx, "hub", fmt.Sprint("team/app", r), fmt.Sprint("v", t))
		if err != nil || len(tag.Digest) != 71 {
			b.Fatalf("GetTag: %+v, %v", tag, err)
		}
	}
}

// BenchmarkGetManifestHot reads manifests that are in the ristretto cache.
func BenchmarkGetManifestHot(b *testing.B) {
	s := sbOpen(b, Options{})
	ctx := context.Background()
	digests := sbPutManifests(b, s, 100)
	s.hot.Wait()
	for _, d := range digests {
		if _, ok := s.hot.Get(d); !ok {
			b.Fatalf("%s is not in the hot cache", d)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.GetManifest(ctx, digests[i%len(digests)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetManifestCold reads manifests from pebble: the hot cache is too
// small to hold any of them.
func BenchmarkGetManifestCold(b *testing.B) {
	s := sbOpen(b, Options{HotManifestBytes: 1})
	ctx := context.Background()
	digests := sbPutManifests(b, s, 1000)
	for _, d := range digests[:10] {
		if _, err := s.GetManifest(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	s.hot.Wait()
	for _, d := range digests[:10] {
		if _, ok := s.hot.Get(d); ok {
			b.Fatalf("%s is in the hot cache; the benchmark would not read pebble", d)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.GetManifest(ctx, digests[i%len(digests)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRepoManifest is a manifest GET by digest of a warm image: the
// manifest hot, its image record read before, in a cached repository and
// in a local one.
func BenchmarkRepoManifest(b *testing.B) {
	s := sbOpen(b, Options{})
	ctx := context.Background()
	digests := sbPutManifests(b, s, 100)
	repos := []RepoKey{CachedKey("hub", "library/app"), LocalKey("team/app")}
	bt := s.NewBatch()
	for _, r := range repos {
		for _, d := range digests {
			if err := bt.PutImage(r, d, Image{PushedAt: time.Now(), MediaType: "application/vnd.oci.image.manifest.v1+json"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := bt.Commit(); err != nil {
		b.Fatal(err)
	}
	for _, r := range repos {
		for _, d := range digests {
			if _, err := s.RepoManifest(ctx, r, d); err != nil {
				b.Fatal(err)
			}
		}
	}
	s.hot.Wait()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.RepoManifest(ctx, repos[i%2], digests[(i/2)%len(digests)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
