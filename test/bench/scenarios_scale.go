package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"berth/reclaim"
	"berth/store"
	"berth/store/scalestore"
)

// scaleFigures is what one store measured.
type scaleFigures struct {
	shape      scalestore.Shape
	build      time.Duration
	built      bool
	open       time.Duration // store.Open in process (recovery)
	evict      time.Duration
	evictRep   reclaim.EvictReport
	ready      time.Duration // exec to /readyz answering 200
	rssReady   float64       // MB
	rssPeak    float64       // MB, VmHWM at the end
	getTag     loadResult
	describe   Sample // ms, first page of describe-repositories
	describeC  Sample // ms, the same with includeCached
	listImages Sample // ms, first page of list-images
	catalog    Sample // ms, first page of _catalog
	tagsList   Sample // ms, first page of tags/list
	gc         time.Duration
	gcRep      reclaim.GCReport
	life       time.Duration
	lifeRepos  int
	lifeImages int
}

// 13. A large store.
func (h *harness) largeStore(ctx context.Context, s *Section) error {
	c := h.cfg
	large, small := scalestore.Full.Div(c.ScaleDiv), scalestore.Full.Div(1000)
	cache := c.ScaleCache
	if c.ScaleDiv >= 1000 {
		cache = "" // a tiny store is built in the run
	}
	s.Intro = scaleIntro(large, small, cache, c.ScaleWarm, c.ScaleGets)
	work := filepath.Join(h.tmp, "scale")
	progress := func(m string) { h.logf("  %s", m) }
	var figs [2]*scaleFigures
	for i, sh := range []scalestore.Shape{small, large} {
		cdir := cache
		if i == 0 {
			cdir = ""
		}
		h.logf("  store of %s", shapeLabel(sh))
		dir, built, took, err := scaleStore(ctx, cdir, filepath.Join(work, fmt.Sprint(i)), sh, progress)
		if err != nil {
			return err
		}
		f := &scaleFigures{shape: sh, build: took, built: built}
		if err := h.scaleMeasure(ctx, dir, f); err != nil {
			return fmt.Errorf("store of %s: %w", shapeLabel(sh), err)
		}
		figs[i] = f
		os.RemoveAll(dir)
	}
	scaleRows(s, figs[0], figs[1])
	return nil
}

// scaleMeasure runs one store: eviction in process, then the real berth
// serving it.
func (h *harness) scaleMeasure(ctx context.Context, dir string, f *scaleFigures) error {
	if err := scaleEvict(ctx, dir, f); err != nil {
		return err
	}
	t0 := time.Now()
	b, err := h.startBerth(ctx, berthOpts{admin: true, pprof: h.admin, dataDir: dir,
		extra: "local:\n  prefixes: [scale]\n  gcInterval: 0s\n  lifecycleInterval: 0s\n"})
	if err != nil {
		return err
	}
	defer b.Stop()
	if err := waitReadyz(ctx, b); err != nil {
		return err
	}
	f.ready = time.Since(t0)
	if kb, err := procStatusKB(b.Pid(), "VmRSS"); err == nil {
		f.rssReady = float64(kb) / 1024
	}
	cl := newClient(64)
	defer closeIdle(cl)
	f.getTag = scaleGetLoad(ctx, cl, b.URL, f.shape, 16, h.cfg.ScaleWarm, h.cfg.ScaleGets)
	if f.getTag.Requests == 0 {
		return fmt.Errorf("no manifest GET by tag succeeded (%d errors)", f.getTag.Errors)
	}
	if err := scalePages(ctx, cl, b, f); err != nil {
		return err
	}
	h.logf("  ready in %s, RSS %.0f MB; GET by tag p99 %s; first pages %s/%s/%s/%s/%s ms", f.ready.Round(time.Millisecond),
		f.rssReady, f.getTag.Pct(0.99), f.describe.num(f.describe.Median()), f.describeC.num(f.describeC.Median()),
		f.listImages.num(f.listImages.Median()), f.catalog.num(f.catalog.Median()), f.tagsList.num(f.tagsList.Median()))
	// The passes take as long as the store is large: no response timeout.
	if err := scalePasses(ctx, &http.Client{}, b, f); err != nil {
		return err
	}
	if kb, err := procStatusKB(b.Pid(), "VmHWM"); err == nil {
		f.rssPeak = float64(kb) / 1024
	}
	h.logf("  GC %s, lifecycle %s, peak RSS %.0f MB (eviction %s, open %s)", f.gc.Round(time.Millisecond),
		f.life.Round(time.Millisecond), f.rssPeak, f.evict.Round(time.Millisecond), f.open.Round(time.Millisecond))
	return nil
}

// scaleEvict opens the store in this process and evicts just past one
// image's worth: the pass's cost is its walk and plan over everything.
func scaleEvict(ctx context.Context, dir string, f *scaleFigures) error {
	t0 := time.Now()
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	f.open = time.Since(t0)
	r := reclaim.New(st, reclaim.Options{})
	t0 = time.Now()
	f.evictRep, err = r.Evict(ctx, st.Stats().BlobBytes-1, nil)
	f.evict = time.Since(t0)
	return err
}

// waitReadyz polls the admin listener's /readyz every 5 ms.
func waitReadyz(ctx context.Context, b *berthProc) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		resp, err := c.Get(b.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("/readyz did not answer 200 within a minute")
}

// scaleGetLoad GETs manifests by tag of random local repositories, conns
// at once: warm requests first, not measured, then n measured ones. A
// random tag each time, so the store's caches see the whole spread of
// tags. Both stores get the same count of each, in the same order of
// draws, so their percentiles come from as many samples after the same
// warm-up (a fixed duration gave the faster store several times the
// samples, and no warm-up measured the first reads of every table).
func scaleGetLoad(ctx context.Context, c *http.Client, base string, sh scalestore.Shape, conns, warm, n int) loadResult {
	var mu sync.Mutex
	res := loadResult{}
	get := func(rng *rand.Rand) (time.Duration, bool) {
		t := rng.IntN(sh.Tags)
		if r := t % sh.Repos; r%2 == 1 { // cached: use the local neighbour
			t--
		}
		url := base + "/v2/" + sh.RepoName(t%sh.Repos) + "/manifests/" + sh.TagName(t)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Accept", acceptManifests)
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0), resp.StatusCode == 200
	}
	run := func(per int, seed uint64, measure bool) {
		var wg sync.WaitGroup
		start := time.Now()
		for g := 0; g < conns; g++ {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), seed))
				var lat []time.Duration
				errs := 0
				for i := 0; i < per && ctx.Err() == nil; i++ {
					if d, ok := get(rng); ok {
						lat = append(lat, d)
					} else {
						errs++
					}
				}
				if measure {
					mu.Lock()
					res.Lat, res.Errors = append(res.Lat, lat...), res.Errors+errs
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		res.Elapsed = time.Since(start)
	}
	run(warm/conns, 12, false)
	run(n/conns, 13, true)
	res.Requests = len(res.Lat)
	sort.Slice(res.Lat, func(i, j int) bool { return res.Lat[i] < res.Lat[j] })
	return res
}

// adminCall POSTs an admin API operation and decodes its answer into out.
func adminCall(ctx context.Context, c *http.Client, b *berthProc, verb string, in, out any) error {
	body, _ := json.Marshal(in)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.AdminURL+"/admin/v1/"+verb, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", verb, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// timed runs f n times and returns each call's milliseconds.
func timed(n int, f func(i int) error) (Sample, error) {
	s := sample("ms", 1)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := f(i); err != nil {
			return s, err
		}
		s.Add(ms(time.Since(t0)))
	}
	return s, nil
}

// scalePages times the first page of every listing a client or operator
// asks for: 100 entries each.
func scalePages(ctx context.Context, c *http.Client, b *berthProc, f *scaleFigures) error {
	sh := f.shape
	const n = 15
	var err error
	var page struct {
		Repositories []json.RawMessage `json:"repositories"`
		ImageIDs     []json.RawMessage `json:"imageIds"`
		NextToken    string            `json:"nextToken"`
	}
	if f.describe, err = timed(n, func(int) error {
		return adminCall(ctx, c, b, "describe-repositories", map[string]any{"maxResults": 100}, &page)
	}); err != nil {
		return err
	}
	if len(page.Repositories) != min(100, (sh.Repos+1)/2) {
		return fmt.Errorf("describe-repositories' first page has %d repositories", len(page.Repositories))
	}
	if f.describeC, err = timed(n, func(int) error {
		return adminCall(ctx, c, b, "describe-repositories", map[string]any{"maxResults": 100, "includeCached": true}, &page)
	}); err != nil {
		return err
	}
	if f.listImages, err = timed(n, func(i int) error {
		return adminCall(ctx, c, b, "list-images", map[string]any{"repositoryName": sh.RepoName(2 * (i * 7919 % (sh.Repos / 2))), "maxResults": 100}, &page)
	}); err != nil {
		return err
	}
	get := func(url string) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
		}
		return nil
	}
	if f.catalog, err = timed(n, func(int) error { return get(b.URL + "/v2/_catalog?n=100") }); err != nil {
		return err
	}
	f.tagsList, err = timed(n, func(i int) error {
		return get(b.URL + "/v2/" + sh.RepoName(2*(i*7919%(sh.Repos/2))) + "/tags/list?n=100")
	})
	return err
}

// scalePasses runs a garbage collection and a lifecycle evaluation of
// every repository (a policy that keeps 100 images: nothing expires, every
// image is evaluated) through the admin API.
func scalePasses(ctx context.Context, c *http.Client, b *berthProc, f *scaleFigures) error {
	var gc struct {
		reclaim.GCReport
		DurationSeconds float64 `json:"durationSeconds"`
	}
	if err := adminCall(ctx, c, b, "start-gc", map[string]any{}, &gc); err != nil {
		return err
	}
	f.gc, f.gcRep = time.Duration(gc.DurationSeconds*float64(time.Second)), gc.GCReport
	policy := `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}`
	for _, scope := range []string{"scale/*", "up/scale/*"} {
		if err := adminCall(ctx, c, b, "put-lifecycle-policy", map[string]any{"repositoryName": scope, "lifecyclePolicyText": policy}, nil); err != nil {
			return err
		}
	}
	var run struct {
		DurationSeconds       float64 `json:"durationSeconds"`
		RepositoriesEvaluated int     `json:"repositoriesEvaluated"`
		ImagesEvaluated       int     `json:"imagesEvaluated"`
	}
	if err := adminCall(ctx, c, b, "run-lifecycle", map[string]any{}, &run); err != nil {
		return err
	}
	f.life = time.Duration(run.DurationSeconds * float64(time.Second))
	f.lifeRepos, f.lifeImages = run.RepositoriesEvaluated, run.ImagesEvaluated
	return nil
}
