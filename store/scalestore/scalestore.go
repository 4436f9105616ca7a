// Package scalestore builds the synthetic large store that the bench's
// scenario 13 (test/bench) and the reclaim passes' benchmarks measure,
// through the store API. It is imported by benchmarks only.
package scalestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"berth/internal/oci"
	"berth/store"
)

// Shape is the synthetic store: Repos repositories, half local and half
// cached (of the rule Upstream), Manifests images spread evenly over them
// (one config and two layers each, drawn from Blobs small blob files),
// and Tags tags spread evenly too, each pointing at one of its
// repository's images.
type Shape struct {
	Repos, Manifests, Blobs, Tags int
}

// Full is the large store of issue #13; Div scales it down.
var Full = Shape{Repos: 100_000, Manifests: 200_000, Blobs: 500_000, Tags: 1_000_000}

// Div is s divided by d (at least 1), keeping a few of each.
func (s Shape) Div(d int) Shape {
	d = max(d, 1)
	return Shape{Repos: max(s.Repos/d, 2), Manifests: max(s.Manifests/d, 2), Blobs: max(s.Blobs/d, 3), Tags: max(s.Tags/d, 2)}
}

// Upstream is the rule name of the cached repositories.
const Upstream = "bench"

const (
	configType = "application/vnd.oci.image.config.v1+json"
	layerType  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// RepoName is repository i's name.
func (s Shape) RepoName(i int) string { return fmt.Sprintf("scale/r%06d", i) }

// RepoKey is repository i's key: even ones local, odd ones cached.
func (s Shape) RepoKey(i int) store.RepoKey {
	if i%2 == 1 {
		return store.CachedKey(Upstream, s.RepoName(i))
	}
	return store.LocalKey(s.RepoName(i))
}

// BlobBytes is blob i's content: small and distinct.
func BlobBytes(i int) []byte {
	b := fmt.Appendf(nil, "berth scale blob %d\n", i)
	for len(b) < 64+i%448 {
		b = append(b, byte('a'+i%26))
	}
	return b
}

// Digest is b's sha256 digest.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ManifestOf is image m: config blob 3m, layers 3m+1 and 3m+2 (mod Blobs).
func (s Shape) ManifestOf(m int) (digest string, body []byte, blobs []string) {
	desc := func(i int, mt string) oci.Descriptor {
		b := BlobBytes(i % s.Blobs)
		blobs = append(blobs, Digest(b))
		return oci.Descriptor{MediaType: mt, Digest: Digest(b), Size: int64(len(b))}
	}
	config := desc(3*m, configType)
	im := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeImageManifest, Config: &config,
		Layers: []oci.Descriptor{desc(3*m+1, layerType), desc(3*m+2, layerType)}}
	body, _ = json.Marshal(im)
	return Digest(body), body, blobs
}

// ImagesOf are repository r's images: m with m % Repos == r.
func (s Shape) ImagesOf(r int) []int {
	var out []int
	for m := r; m < s.Manifests; m += s.Repos {
		out = append(out, m)
	}
	return out
}

// TagName is tag t's name; tag t belongs to repository t % Repos.
func (s Shape) TagName(t int) string { return fmt.Sprintf("t%d", t/s.Repos) }

// Build writes the shape into a new store at dir through the store API:
// blobs with BlobWriter (each synced and indexed, as a fill commits one),
// the rest in batches. progress is called now and then.
func Build(ctx context.Context, dir string, s Shape, progress func(string)) error {
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := blobs(ctx, st, s, progress); err != nil {
		return err
	}
	now := time.Now()
	for r0 := 0; r0 < s.Repos; r0 += 2000 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := repos(st, s, r0, min(r0+2000, s.Repos), now); err != nil {
			return err
		}
		if r0%20000 == 0 {
			progress(fmt.Sprintf("repositories %d/%d", r0, s.Repos))
		}
	}
	return nil
}

// blobs commits every blob, 64 at a time.
func blobs(ctx context.Context, st *store.Store, s Shape, progress func(string)) error {
	work := make(chan int)
	errc := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				if err := commitBlob(ctx, st, BlobBytes(i)); err != nil {
					errc <- fmt.Errorf("blob %d: %w", i, err)
					return
				}
			}
		})
	}
	var err error
feed:
	for i := 0; i < s.Blobs; i++ {
		select {
		case work <- i:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
		if i%50_000 == 0 && i > 0 {
			progress(fmt.Sprintf("blobs %d/%d", i, s.Blobs))
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	return errors.Join(err, <-errc)
}

func commitBlob(ctx context.Context, st *store.Store, b []byte) error {
	bw, err := st.NewBlobWriter(ctx, Digest(b), int64(len(b)))
	if err != nil {
		return err
	}
	if _, err := bw.Write(b); err != nil {
		bw.Abort()
		return err
	}
	return bw.Commit(ctx)
}

// repos writes repositories [r0, r1) with their images, links and tags
// in one batch.
func repos(st *store.Store, s Shape, r0, r1 int, now time.Time) error {
	b := st.NewBatch()
	defer b.Close()
	for r := r0; r < r1; r++ {
		key := s.RepoKey(r)
		if !key.Cached() {
			if err := b.PutRepository(&store.Repository{Name: key.Name, CreatedAt: now, Mutability: "MUTABLE"}); err != nil {
				return err
			}
		}
		var digests []string
		for k, m := range s.ImagesOf(r) {
			d, body, blobs := s.ManifestOf(m)
			if err := b.PutManifest(d, &store.Manifest{MediaType: oci.MediaTypeImageManifest, Body: body}); err != nil {
				return err
			}
			pushed := now.Add(-time.Duration(k) * time.Hour)
			if err := b.PutImage(key, d, store.Image{PushedAt: pushed, MediaType: oci.MediaTypeImageManifest}); err != nil {
				return err
			}
			var err error
			if key.Cached() {
				err = b.LinkOrigin(store.Origin{Repo: key, Shared: true}, blobs...)
			} else {
				err = b.Link(key, blobs...)
			}
			if err != nil {
				return err
			}
			digests = append(digests, d)
		}
		if len(digests) == 0 {
			continue
		}
		for t, k := r, 0; t < s.Tags; t, k = t+s.Repos, k+1 {
			tag := store.Tag{Digest: digests[k%len(digests)], FetchedAt: now}
			if err := b.PutTag(key.Upstream, key.Name, s.TagName(t), tag); err != nil {
				return err
			}
		}
	}
	return b.Commit()
}
