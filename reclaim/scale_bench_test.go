package reclaim

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/lifecycle"
	"berth/store"
	"berth/store/scalestore"
)

// The memory of the reclaim passes over a large store: the shape of the
// bench's scenario 13 (package scalestore), divided by -scalediv, built
// through the store API on tmpfs when there is one. Each benchmark
// reports the pass's peak heap (heap objects' bytes, sampled every
// millisecond: what the process's RSS follows, about twice what is live
// with GOGC=100), its peak live heap (as the collections during the pass
// found it) and its allocations and CPU time (steadier than wall time on a shared machine).
//
//	go test -run '^$' -bench Scale -benchtime 3x ./reclaim
var scaleDiv = flag.Int("scalediv", 10, "divide the bench's large store (1,000,000 tags, 100,000 repositories) by this")

var benchStores struct {
	sync.Mutex
	dirs map[scalestore.Shape]string
}

// benchStore opens (building it the first time) the store of shape s.
func benchStore(b *testing.B, s scalestore.Shape) *store.Store {
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
		if err := scalestore.Build(ctx, dir, s, func(string) {}); err != nil {
			os.RemoveAll(dir)
			b.Fatal(err)
		}
		b.Logf("built a store of %+v in %s", s, time.Since(t0).Round(time.Millisecond))
		if benchStores.dirs == nil {
			benchStores.dirs = map[scalestore.Shape]string{}
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

func benchScaleShape() scalestore.Shape { return scalestore.Full.Div(*scaleDiv) }

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
		key := s.RepoKey(2*(n%(s.Repos/2)) + 1)
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
