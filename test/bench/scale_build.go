package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"berth/store"
)

// scaleShape is the synthetic store of scenario 13: Repos repositories,
// half local and half cached (of the bench upstream rule), Manifests
// images spread evenly over them (one config and two layers each, drawn
// from Blobs small blob files), and Tags tags spread evenly too, each
// pointing at one of its repository's images.
type scaleShape struct {
	Repos, Manifests, Blobs, Tags int
}

// scaleFull is the large store; a divisor scales it down.
var scaleFull = scaleShape{Repos: 100_000, Manifests: 200_000, Blobs: 500_000, Tags: 1_000_000}

func (s scaleShape) div(d int) scaleShape {
	d = max(d, 1)
	return scaleShape{Repos: max(s.Repos/d, 2), Manifests: max(s.Manifests/d, 2), Blobs: max(s.Blobs/d, 3), Tags: max(s.Tags/d, 2)}
}

func (s scaleShape) String() string {
	return fmt.Sprintf("%s tags over %s repositories, %s manifests, %s blobs", fmtNum(float64(s.Tags), 0),
		fmtNum(float64(s.Repos), 0), fmtNum(float64(s.Manifests), 0), fmtNum(float64(s.Blobs), 0))
}

// scaleUpstream is the rule name of the cached repositories; the bench's
// berth config names its upstream rule so.
const scaleUpstream = "bench"

// repo i's name and key: even ones local, odd ones cached.
func (s scaleShape) repoName(i int) string { return fmt.Sprintf("scale/r%06d", i) }

func (s scaleShape) repoKey(i int) store.RepoKey {
	if i%2 == 1 {
		return store.CachedKey(scaleUpstream, s.repoName(i))
	}
	return store.LocalKey(s.repoName(i))
}

// blobBytes is blob i's content: small and distinct.
func blobBytes(i int) []byte {
	b := fmt.Appendf(nil, "berth scale blob %d\n", i)
	for len(b) < 64+i%448 {
		b = append(b, byte('a'+i%26))
	}
	return b
}

func blobDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// manifestOf is image m: config blob 3m, layers 3m+1 and 3m+2 (mod Blobs).
func (s scaleShape) manifestOf(m int) (digest string, body []byte, blobs []string) {
	desc := func(i int, mt string) descriptor {
		b := blobBytes(i % s.Blobs)
		blobs = append(blobs, blobDigest(b))
		return descriptor{MediaType: mt, Digest: blobDigest(b), Size: int64(len(b))}
	}
	im := imageManifest{SchemaVersion: 2, MediaType: ociManifest, Config: desc(3*m, ociConfig),
		Layers: []descriptor{desc(3*m+1, ociLayer), desc(3*m+2, ociLayer)}}
	body, _ = json.Marshal(im)
	return blobDigest(body), body, blobs
}

// imagesOf are repo r's images: m with m % Repos == r.
func (s scaleShape) imagesOf(r int) []int {
	var out []int
	for m := r; m < s.Manifests; m += s.Repos {
		out = append(out, m)
	}
	return out
}

// tagsOf are repo r's tags: t with t % Repos == r, named "t<t/Repos>", each
// on one of its images in turn.
func (s scaleShape) tagName(t int) string { return fmt.Sprintf("t%d", t/s.Repos) }

// buildScaleStore writes the shape into a new store at dir through the
// store API: blobs with BlobWriter (each synced and indexed, as a fill
// commits one), the rest in batches. progress is called now and then.
func buildScaleStore(ctx context.Context, dir string, s scaleShape, progress func(string)) error {
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := scaleBlobs(ctx, st, s, progress); err != nil {
		return err
	}
	now := time.Now()
	for r0 := 0; r0 < s.Repos; r0 += 2000 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := scaleRepos(ctx, st, s, r0, min(r0+2000, s.Repos), now); err != nil {
			return err
		}
		if r0%20000 == 0 {
			progress(fmt.Sprintf("repositories %d/%d", r0, s.Repos))
		}
	}
	return nil
}

// scaleBlobs commits every blob, 64 at a time.
func scaleBlobs(ctx context.Context, st *store.Store, s scaleShape, progress func(string)) error {
	work := make(chan int)
	errc := make(chan error, 64)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				b := blobBytes(i)
				bw, err := st.NewBlobWriter(ctx, blobDigest(b), int64(len(b)))
				if err == nil {
					if _, err = bw.Write(b); err == nil {
						err = bw.Commit(ctx)
					} else {
						bw.Abort()
					}
				}
				if err != nil {
					errc <- fmt.Errorf("blob %d: %w", i, err)
					return
				}
			}
		}()
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

// scaleRepos writes repositories [r0, r1) with their images, links and
// tags in one batch.
func scaleRepos(ctx context.Context, st *store.Store, s scaleShape, r0, r1 int, now time.Time) error {
	b := st.NewBatch()
	defer b.Close()
	for r := r0; r < r1; r++ {
		key := s.repoKey(r)
		if !key.Cached() {
			if err := b.PutRepository(&store.Repository{Name: key.Name, CreatedAt: now, Mutability: "MUTABLE"}); err != nil {
				return err
			}
		}
		var digests []string
		for k, m := range s.imagesOf(r) {
			d, body, blobs := s.manifestOf(m)
			if err := b.PutManifest(d, &store.Manifest{MediaType: ociManifest, Body: body}); err != nil {
				return err
			}
			pushed := now.Add(-time.Duration(k) * time.Hour)
			if err := b.PutImage(key, d, store.Image{PushedAt: pushed, MediaType: ociManifest}); err != nil {
				return err
			}
			if key.Cached() {
				err := b.LinkOrigin(store.Origin{Repo: key, Shared: true}, blobs...)
				if err != nil {
					return err
				}
			} else if err := b.Link(key, blobs...); err != nil {
				return err
			}
			digests = append(digests, d)
		}
		if len(digests) == 0 {
			continue
		}
		for t, k := r, 0; t < s.Tags; t, k = t+s.Repos, k+1 {
			tag := store.Tag{Digest: digests[k%len(digests)], FetchedAt: now}
			if err := b.PutTag(key.Upstream, key.Name, s.tagName(t), tag); err != nil {
				return err
			}
		}
	}
	return b.Commit()
}

// scaleCacheVersion names the builder's output; change it when the shape
// or the store's format changes so an old cache is not used.
const scaleCacheVersion = "v1"

// scaleStore returns a data directory holding the shape: built once into
// cacheDir and kept across runs (the full shape takes many minutes to
// build, blob commits being synced one by one), or built into work when
// cacheDir is "". built says whether it was built in this run.
func scaleStore(ctx context.Context, cacheDir, work string, s scaleShape, progress func(string)) (dir string, built bool, took time.Duration, err error) {
	name := fmt.Sprintf("scale-%s-%d-%d-%d-%d", scaleCacheVersion, s.Repos, s.Manifests, s.Blobs, s.Tags)
	if cacheDir == "" {
		dir = filepath.Join(work, name)
		t0 := time.Now()
		err := buildStaged(ctx, dir, s, progress)
		return dir, true, time.Since(t0), err
	}
	src := filepath.Join(cacheDir, name)
	if _, err := os.Stat(filepath.Join(src, "complete")); err != nil {
		os.RemoveAll(src)
		t0 := time.Now()
		if err := buildStaged(ctx, filepath.Join(src, "data"), s, progress); err != nil {
			return "", false, 0, fmt.Errorf("build the large store in %s: %w", src, err)
		}
		took, built = time.Since(t0), true
		if err := os.WriteFile(filepath.Join(src, "complete"), []byte(s.String()+"\n"), 0o644); err != nil {
			return "", false, 0, err
		}
	}
	// Served in place through a link in the run's directory (the harness
	// removes a server's data directory when it stops it: here only the
	// link). A run changes it little: access times, one lifecycle policy,
	// and the one image its eviction pass takes.
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", false, 0, err
	}
	dir = filepath.Join(work, name)
	if err := os.Symlink(filepath.Join(src, "data"), dir); err != nil {
		return "", false, 0, err
	}
	return dir, built, took, nil
}

// buildStaged builds the store on tmpfs (/dev/shm) when there is one and
// copies it to dst: every blob commit is synced, one at a time under the
// store's commit lock, which on a busy disk is a few hundred a second;
// on tmpfs a sync costs nothing. The copy is synced once at the end.
func buildStaged(ctx context.Context, dst string, s scaleShape, progress func(string)) error {
	stage, err := os.MkdirTemp("/dev/shm", "berth-bench-scale-")
	if err != nil {
		return buildScaleStore(ctx, dst, s, progress)
	}
	defer os.RemoveAll(stage)
	if err := buildScaleStore(ctx, filepath.Join(stage, "data"), s, progress); err != nil {
		return err
	}
	progress("copying the store from tmpfs to " + dst)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	for _, c := range [][]string{{"cp", "-a", filepath.Join(stage, "data"), dst}, {"sync", "-f", dst}} {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v: %s", c, err, out)
		}
	}
	return nil
}

// defaultScaleCache is where the large store is kept between runs: the
// user's cache directory.
func defaultScaleCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "berth-bench")
}
