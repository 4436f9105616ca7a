package reclaim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"berth/lifecycle"
	"berth/store"
)

// The memory of the reclaim passes over a large store: the shape of the
// bench's scenario 13 (test/bench/scale_build.go), divided by -scalediv,
// built through the store API on tmpfs when there is one. Each benchmark
// reports the pass's peak heap (heap objects' bytes, sampled every
// millisecond: what the process's RSS follows, about twice what is live
// with GOGC=100), its peak live heap (as the collections during the pass
// found it) and its allocations and CPU time (steadier than wall time on a shared machine).
//
//	go test -run '^$' -bench Scale -benchtime 3x ./reclaim
var scaleDiv = flag.Int("scalediv", 10, "divide the bench's large store (1,000,000 tags, 100,000 repositories) by this")

type benchShape struct{ repos, manifests, blobs, tags int }

func (s benchShape) repoKey(i int) store.RepoKey {
	name := fmt.Sprintf("scale/r%06d", i)
	if i%2 == 1 {
		return store.CachedKey("bench", name)
	}
	return store.LocalKey(name)
}

func benchBlob(i int) []byte {
	b := fmt.Appendf(nil, "berth scale blob %d\n", i)
	for len(b) < 64+i%448 {
		b = append(b, byte('a'+i%26))
	}
	return b
}

func benchDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// manifestOf is image m: config blob 3m, layers 3m+1 and 3m+2 (mod blobs).
func (s benchShape) manifestOf(m int) (digest string, body []byte, blobs []string) {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	d := func(i int, mt string) desc {
		b := benchBlob(i % s.blobs)
		blobs = append(blobs, benchDigest(b))
		return desc{mt, benchDigest(b), int64(len(b))}
	}
	body, _ = json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": d(3*m, "application/vnd.oci.image.config.v1+json"),
		"layers": []desc{d(3*m+1, "application/vnd.oci.image.layer.v1.tar+gzip"), d(3*m+2, "application/vnd.oci.image.layer.v1.tar+gzip")}})
	return benchDigest(body), body, blobs
}

var benchStores struct {
	sync.Mutex
	dirs map[benchShape]string
}

// benchStore opens (building it the first time) the store of shape s.
func benchStore(b *testing.B, s benchShape) *store.Store {
	b.Helper()
	ctx := context.Background()
	benchStores.Lock()
	defer benchStores.Unlock()
	dir, ok := benchStores.dirs[s]
	if !ok {
		parent := ""
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			parent = "/dev/shm"
		}
		var err error
		if dir, err = os.MkdirTemp(parent, "berth-reclaim-bench-"); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := buildBenchStore(ctx, dir, s); err != nil {
			os.RemoveAll(dir)
			b.Fatal(err)
		}
		b.Logf("built a store of %+v in %s", s, time.Since(t0).Round(time.Millisecond))
		if benchStores.dirs == nil {
			benchStores.dirs = map[benchShape]string{}
		}
		benchStores.dirs[s] = dir
	}
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func buildBenchStore(ctx context.Context, dir string, s benchShape) error {
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make([]error, 8)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < s.blobs && errs[w] == nil; i = int(next.Add(1) - 1) {
				data := benchBlob(i)
				bw, err := st.NewBlobWriter(ctx, benchDigest(data), int64(len(data)))
				if err == nil {
					if _, err = bw.Write(data); err == nil {
						err = bw.Commit(ctx)
					}
				}
				errs[w] = err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	now := time.Now()
	for r0 := 0; r0 < s.repos; r0 += 2000 {
		if err := benchRepos(st, s, r0, min(r0+2000, s.repos), now); err != nil {
			return err
		}
	}
	return nil
}

// benchRepos writes repositories [r0, r1): image m belongs to repository
// m % repos, tag t to repository t % repos, on its images in turn.
func benchRepos(st *store.Store, s benchShape, r0, r1 int, now time.Time) error {
	b := st.NewBatch()
	defer b.Close()
	for r := r0; r < r1; r++ {
		key := s.repoKey(r)
		var digests []string
		for m, k := r, 0; m < s.manifests; m, k = m+s.repos, k+1 {
			d, body, blobs := s.manifestOf(m)
			if err := b.PutManifest(d, &store.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: body}); err != nil {
				return err
			}
			if err := b.PutImage(key, d, store.Image{PushedAt: now.Add(-time.Duration(k) * time.Hour)}); err != nil {
				return err
			}
			if key.Cached() {
				if err := b.LinkOrigin(store.Origin{Repo: key, Shared: true}, blobs...); err != nil {
					return err
				}
			} else if err := b.Link(key, blobs...); err != nil {
				return err
			}
			digests = append(digests, d)
		}
		for t, k := r, 0; t < s.tags && len(digests) > 0; t, k = t+s.repos, k+1 {
			tag := store.Tag{Digest: digests[k%len(digests)], FetchedAt: now}
			if err := b.PutTag(key.Upstream, key.Name, fmt.Sprintf("t%d", k), tag); err != nil {
				return err
			}
		}
	}
	return b.Commit()
}

func benchScaleShape() benchShape {
	d := max(*scaleDiv, 1)
	return benchShape{repos: 100_000 / d, manifests: 200_000 / d, blobs: 500_000 / d, tags: 1_000_000 / d}
}

// peakHeap samples the heap every millisecond until stop is called, which
// returns the peaks, above what they were at the start, of the heap's
// object bytes (live and not yet collected: what RSS follows) and of the
// bytes the last collection found live.
func peakHeap() (stop func() (heap, live uint64)) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	base := [2]uint64{s[0].Value.Uint64(), s[1].Value.Uint64()}
	peak := base
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			for i := range peak {
				peak[i] = max(peak[i], s[i].Value.Uint64())
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-finished
		return peak[0] - base[0], peak[1] - base[1]
	}
}

// benchPass runs pass b.N times and reports its peaks in MB.
func benchPass(b *testing.B, pass func(ctx context.Context) error) {
	ctx := context.Background()
	b.ReportAllocs()
	var heap, live uint64
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stop := peakHeap()
		if err := pass(ctx); err != nil {
			b.Fatal(err)
		}
		h, l := stop()
		heap, live = max(heap, h), max(live, l)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(heap)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(live)/1e6, "peak-live-MB")
}

// cpuTime is the process's user and system time so far: on a shared
// machine a steadier measure of a pass's cost than its wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkScaleGC(b *testing.B) {
	r := New(benchStore(b, benchScaleShape()), Options{})
	benchPass(b, func(ctx context.Context) error {
		rep, err := r.GC(ctx, time.Hour)
		if err == nil && rep.BlobsDeleted+rep.ManifestsDeleted > 0 {
			err = fmt.Errorf("GC deleted from the bench store: %+v", rep)
		}
		return err
	})
}

// BenchmarkScaleEvict plans over everything and evicts about one image,
// as the bench's eviction pass does.
func BenchmarkScaleEvict(b *testing.B) {
	st := benchStore(b, benchScaleShape())
	r := New(st, Options{})
	benchPass(b, func(ctx context.Context) error {
		_, err := r.Evict(ctx, st.Stats().BlobBytes-1, nil)
		return err
	})
}

// BenchmarkScaleLifecycle evaluates a policy on every repository, as the
// admin API's lifecycle run does (nothing expires), then expires one
// cached image, whose reclaim walks every image.
func BenchmarkScaleLifecycle(b *testing.B) {
	s := benchScaleShape()
	st := benchStore(b, s)
	r := New(st, Options{})
	p, err := lifecycle.Parse([]byte(`{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	benchPass(b, func(ctx context.Context) error {
		repos, err := r.StoreRepositories(ctx)
		if err != nil {
			return err
		}
		for _, ri := range repos {
			images, err := r.Images(ctx, ri.ImageRepo)
			if err != nil {
				return err
			}
			if res := Plan(p, images, time.Now()); len(res) > 0 {
				return fmt.Errorf("the policy expires %d images of %s", len(res), ri.Key)
			}
		}
		// One cached image, another each time.
		key := s.repoKey(2*(n%(s.repos/2)) + 1)
		n++
		images, err := st.ListImages(ctx, key)
		if err != nil {
			return err
		}
		for d := range images {
			_, err = r.ExpireImages(ctx, []ImageRef{{Repo: ImageRepo{Key: key}, Digest: d}})
			return err
		}
		return nil
	})
}
