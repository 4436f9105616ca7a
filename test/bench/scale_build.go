package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"berth/store/scalestore"
)

// shapeLabel says what a store of shape s holds, for the log and report.
func shapeLabel(s scalestore.Shape) string {
	return fmt.Sprintf("%s tags over %s repositories, %s manifests, %s blobs", fmtNum(float64(s.Tags), 0),
		fmtNum(float64(s.Repos), 0), fmtNum(float64(s.Manifests), 0), fmtNum(float64(s.Blobs), 0))
}

// scaleCacheVersion names the builder's output; change it when the shape
// or the store's format changes so an old cache is not used (v2: the
// store's tables carry bloom filters, which a v1 store lacks until
// compactions rewrite it).
const scaleCacheVersion = "v2"

// scaleStore returns a data directory holding the shape: built once into
// cacheDir and kept across runs (the full shape takes many minutes to
// build, blob commits being synced one by one), or built into work when
// cacheDir is "". built says whether it was built in this run.
func scaleStore(ctx context.Context, cacheDir, work string, s scalestore.Shape, progress func(string)) (dir string, built bool, took time.Duration, err error) {
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
		if err := os.WriteFile(filepath.Join(src, "complete"), []byte(shapeLabel(s)+"\n"), 0o644); err != nil {
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
func buildStaged(ctx context.Context, dst string, s scalestore.Shape, progress func(string)) error {
	stage, err := os.MkdirTemp("/dev/shm", "berth-bench-scale-")
	if err != nil {
		return scalestore.Build(ctx, dst, s, progress)
	}
	defer os.RemoveAll(stage)
	if err := scalestore.Build(ctx, filepath.Join(stage, "data"), s, progress); err != nil {
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
