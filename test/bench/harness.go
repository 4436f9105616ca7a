package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// harness holds what every scenario shares.
type harness struct {
	cfg      Config
	out      io.Writer // progress
	root     string
	tmp      string
	blobDir  string
	bin      string
	dist     string // the Distribution registry binary, "" when scenario 10 is not run
	admin    bool   // the binary knows admin.listen and admin.pprof
	ref      *refServer
	start    time.Time
	deadline time.Time

	// Blobs by role.
	single          []blobFile
	par             []blobFile
	cold, stormBlob blobFile
	mem             blobFile
	image           manifestEntry
	blobsMan        manifestEntry // bench/blobs:v1, lists every standalone blob

	warm     *berthProc // a long-lived berth for warm scenarios
	direct   *http.Client
	viaWarm  *http.Client
	diskMBps float64 // write+fsync of ColdSize on the data disk
	shaMBps  float64

	stormHWM Sample // peak RSS of the berths of scenario 4 with the most clients
	stormN   int
	captures []capture
	profiles []string // markdown for the profile section

	ports portBook // every port handed out to a server of this run
}

const (
	blobsRepo = "bench/blobs"
	imageRepo = "bench/app"
)

func (h *harness) logf(format string, a ...any) {
	fmt.Fprintf(h.out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// Run runs every scenario of cfg and returns the report. An error means the
// harness itself could not run; scenario failures are in the report.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	start := time.Now()
	h := &harness{cfg: cfg, out: progress, start: start}
	rep := &Report{Mode: cfg.Mode, Command: cfg.Command, Date: start}
	var err error
	if h.root, err = moduleRoot(); err != nil {
		return nil, err
	}
	if h.tmp, err = os.MkdirTemp("", "berth-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(h.tmp)
	h.blobDir = filepath.Join(h.tmp, "ref", "blobs")
	if err := os.MkdirAll(h.blobDir, 0o755); err != nil {
		return nil, err
	}
	loadStart := loadavg()

	// In a smoke run the store benchmarks (mostly a test binary build) run
	// beside everything else; in a full run they run last, alone.
	storeSec := &Section{ID: 9, Title: "Store benchmarks (Go)"}
	var storeDone chan struct{}
	if cfg.StoreEarly {
		storeDone = make(chan struct{})
		go func() {
			defer close(storeDone)
			t0 := time.Now()
			if err := h.storeBench(context.WithoutCancel(ctx), storeSec); err != nil {
				storeSec.Err = err.Error()
			}
			storeSec.Took = time.Since(t0)
		}()
		defer func() { <-storeDone }()
	}

	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	if cfg.Berth != "" {
		h.bin, err = filepath.Abs(cfg.Berth)
	} else {
		h.logf("building berth")
		h.bin, err = buildBerth(bctx, h.root, h.tmp)
	}
	if err == nil {
		h.admin = adminSupported(bctx, h.bin, h.tmp)
	}
	if err == nil && (cfg.Only == nil || cfg.Only[10]) {
		h.dist, err = findDist(bctx, cfg.Dist)
	}
	cancel()
	if err != nil {
		return nil, err
	}
	for _, bin := range []string{h.bin, h.dist} {
		if bin == "" {
			continue
		}
		if err := evictFromPageCache(bin); err != nil {
			return nil, err
		}
	}
	// The budget starts after the build, which a cold build cache makes slow.
	h.deadline = time.Now().Add(cfg.Budget)
	ctx, cancel = context.WithDeadline(ctx, h.deadline)
	defer cancel()

	h.logf("berth built; generating blobs")
	if err := h.generate(ctx); err != nil {
		return nil, fmt.Errorf("generate blobs: %w", err)
	}
	h.measureLimits()
	h.logf("blobs ready")
	if h.ref, err = startRefServer(ctx, filepath.Dir(h.blobDir)); err != nil {
		return nil, err
	}
	defer h.ref.Stop()
	h.direct = newClient(128)
	if err := h.warmClient(ctx, h.direct, h.ref.Upstream); err != nil {
		return nil, err
	}
	if h.warm, err = h.startBerth(ctx, berthOpts{admin: h.admin, pprof: h.admin}); err != nil {
		return nil, err
	}
	defer func() { h.warm.Stop() }()
	h.viaWarm = newClient(128)

	scenarios := []struct {
		id    int
		title string
		run   func(context.Context, *Section) error
		// own: not bound by the scenarios' budget but by its own
		// (the store benchmarks compile and run a test binary).
		own bool
	}{
		{1, "Warm blob, single stream", h.warmSingle, false},
		{2, fmt.Sprintf("Warm blobs, %d parallel streams", cfg.ParStreams), h.warmParallel, false},
		{3, "Cold blob fill", h.coldFill, false},
		{4, "Concurrent cold pulls of one blob", h.storm, false},
		{5, "Manifests, warm", h.manifests, false},
		{6, "Whole image pulls", h.imagePulls, false},
		{7, "Memory", h.memory, false},
		{8, "Cluster morning storm (" + nodesLabel(cfg.ClusterNodes) + " nodes)", h.cluster, false},
		{11, "Cold fills through a paced upstream", h.coldPaced, true},
		{10, "Distribution " + distVersion + " as a peer (pull-through)", h.distPeer, true},
		{13, "A large store", h.largeStore, true},
		{14, "Encryption at rest", h.encryption, true},
		{9, "Store benchmarks (Go)", h.storeBench, true},
	}
	for _, sc := range scenarios {
		s := &Section{ID: sc.id, Title: sc.title}
		if sc.id == 9 && storeDone != nil {
			<-storeDone
			rep.Sections = append(rep.Sections, storeSec)
			continue
		}
		rep.Sections = append(rep.Sections, s)
		sctx := ctx
		if cfg.Only != nil && !cfg.Only[sc.id] {
			s.Err = "not run (-only)"
			continue
		}
		if sc.own {
			sctx = context.WithoutCancel(ctx)
		} else if ctx.Err() != nil {
			s.Err = "not run: the time budget of the run was used up"
			continue
		}
		h.logf("scenario %d: %s", sc.id, sc.title)
		t0 := time.Now()
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return sc.run(sctx, s)
		}()
		s.Took = time.Since(t0)
		h.logf("scenario %d took %s", sc.id, s.Took.Round(time.Millisecond))
		if err != nil {
			if sctx.Err() != nil {
				err = fmt.Errorf("the time budget of the run was used up (%w)", err)
			}
			s.Err = err.Error()
			h.logf("scenario %d failed: %v", sc.id, err)
		}
		for _, r := range s.Rows {
			r.eval()
		}
	}
	t0 := time.Now()
	h.formatProfiles(context.WithoutCancel(ctx))
	h.logf("profiles formatted in %s", time.Since(t0).Round(time.Millisecond))
	if len(h.profiles) > 0 {
		rep.Sections = append(rep.Sections, &Section{Title: "Profiles", Intro: "Taken from the warm Berth through its admin " +
			"listener (`admin.pprof: true`) right after the measured runs of a scenario, not during them, with the same load " +
			"driven for the length of the CPU profile. The allocation table is the difference of two heap profiles around that window.",
			Extra: strings.Join(h.profiles, "\n")})
	}
	rep.Took = time.Since(start)
	rep.Machine = h.machine(loadStart)
	rep.Method = h.method()
	return rep, nil
}

func (h *harness) warmClient(ctx context.Context, c *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, p := range []string{"/v2/", "/v2/" + blobsRepo + "/manifests/v1"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		req.Header.Set("Accept", acceptManifests)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s%s: %d", base, p, resp.StatusCode)
		}
	}
	return nil
}

// generate writes every blob and the reference server's index.
func (h *harness) generate(ctx context.Context) error {
	c := h.cfg
	var sizes []int64
	for _, s := range c.Single {
		sizes = append(sizes, s.Size)
	}
	nSingle := len(sizes)
	for i := 0; i < c.ParStreams; i++ {
		sizes = append(sizes, c.ParSize)
	}
	sizes = append(sizes, c.ColdSize, c.StormSize, c.MemSize)
	nLayers := len(sizes)
	sizes = append(sizes, c.ImageSizes...)
	all, err := genBlobs(ctx, h.blobDir, sizes, 1000)
	if err != nil {
		return err
	}
	h.single = all[:nSingle]
	h.par = all[nSingle : nSingle+c.ParStreams]
	h.cold, h.stormBlob, h.mem = all[nLayers-3], all[nLayers-2], all[nLayers-1]
	layers := all[nLayers:]

	idx := refIndex{Blobs: map[string]string{}}
	for _, b := range all {
		idx.Blobs[b.Digest] = b.Path
	}
	// bench/blobs:v1 lists the standalone blobs; it is what a fresh berth
	// is asked first, so that its upstream connection is set up before a
	// cold blob is timed (a real pull always asks the manifest first).
	blobsMan, cfgBlob, err := buildImage(h.blobDir, blobsRepo, "v1", all[:nLayers])
	if err != nil {
		return err
	}
	idx.Blobs[cfgBlob.Digest] = cfgBlob.Path
	img, imgCfg, err := buildImage(h.blobDir, imageRepo, "v1", layers)
	if err != nil {
		return err
	}
	idx.Blobs[imgCfg.Digest] = imgCfg.Path
	h.blobsMan, h.image = blobsMan, img
	idx.Manifests = []manifestEntry{blobsMan, img}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(h.blobDir), "index.json"), b, 0o644)
}

// measureLimits measures sha256 on one core and write+fsync on the disk
// that holds the data directories: the floors of a cold fill.
func (h *harness) measureLimits() {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	// sha256: the best of three runs, as the machine may be busy.
	n := min(h.cfg.ColdSize, 64*miB)
	for i := 0; i < 3; i++ {
		hs := sha256.New()
		t0 := time.Now()
		for done := int64(0); done < n; done += int64(len(buf)) {
			hs.Write(buf)
		}
		h.shaMBps = max(h.shaMBps, float64(n)/time.Since(t0).Seconds()/1e6)
	}
	var t0 time.Time

	f, err := os.CreateTemp(h.tmp, "fsync-")
	if err != nil {
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	t0 = time.Now()
	for done := int64(0); done < h.cfg.ColdSize; done += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
	if f.Sync() != nil {
		return
	}
	h.diskMBps = float64(h.cfg.ColdSize) / time.Since(t0).Seconds() / 1e6
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func firstLine(cmd string, args ...string) string {
	out, err := exec.Command(cmd, args...).Output()
	if err != nil {
		return "?"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

func (h *harness) machine(loadStart string) []string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "?"
	if kb, err := procMeminfoKB("MemTotal"); err == nil {
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	rev := firstLine("git", "-C", h.root, "rev-parse", "--short", "HEAD")
	if out, err := exec.Command("git", "-C", h.root, "status", "--porcelain").Output(); err == nil && len(out) > 0 {
		rev += " with uncommitted changes in the working tree"
	}
	if h.cfg.Berth != "" {
		rev = "the binary " + h.cfg.Berth + " (given with -berth), harness at " + rev
	}
	l := []string{
		fmt.Sprintf("CPU: %s, `nproc` = %d", model, runtime.NumCPU()),
		"Memory: " + mem,
		"Kernel: " + kernel + ", data on " + fsOf(h.tmp),
		"Go: `" + firstLine("go", "version") + "`",
		"Berth: commit " + rev,
		fmt.Sprintf("Load average (1, 5, 15 min) at start: %s; at end: %s", loadStart, loadavg()),
	}
	if h.shaMBps > 0 || h.diskMBps > 0 {
		l = append(l, fmt.Sprintf("Local limits measured by the harness: sha256 on one core %s MB/s (best of 3); "+
			"writing %s to the data disk and fsync %s MB/s", fmtNum(h.shaMBps, 0), sizeLabel(h.cfg.ColdSize), fmtNum(h.diskMBps, 0)))
	}
	return l
}

func procMeminfoKB(key string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			var kb int64
			_, err := fmt.Sscan(rest, &kb)
			return kb, err
		}
	}
	return 0, errors.New("no " + key)
}

// fsOf names the filesystem type of the mount that holds path.
func fsOf(path string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, typ = mp, f[2]
		}
	}
	return typ
}

func (h *harness) method() []string {
	return []string{
		"Everything runs on this one machine over 127.0.0.1: the client (the harness, Go `net/http`, keep-alive, " +
			"256 KiB reads), Berth (the real binary built from this tree with `go build ./cmd/berth`, " +
			"`berth serve` with rate limiting off and log level warn, data in a temporary directory on the disk named above) " +
			"and the references, which run in a child process of their own like Berth.",
		"**Upstream** is a minimal read-only registry that serves `/v2/`, manifests by tag and digest, and blobs from files " +
			"with `http.ServeContent`, counting requests. It is Berth's only upstream, and pulling from it directly is the " +
			"\"upstream served directly\" reference.",
		"**sendfile** is a plain `http.ServeFile` server over the same files: the most a Go HTTP server can do with a file " +
			"from the page cache, the reference for warm blobs.",
		"**distribution** (scenario 10) is Distribution " + distVersion + " (`registry serve`, installed by " +
			"`scripts/install-bench-deps`) in proxy mode with `remoteurl` the same upstream, filesystem storage in a temporary " +
			"directory and log level error: a pull-through cache doing Berth's job, measured in the same cases as Berth.",
		"Blob bytes are a deterministic ChaCha8 stream (incompressible, like real layers) written to files; nothing holds a blob " +
			"in memory. Warm means the blob is in Berth's store and in the page cache; cold means a fresh Berth (new process, empty " +
			"data directory) that has answered one manifest request for the repository, so its upstream connection exists, as in a real pull.",
		"Each cell is the median with [min–max] over the runs; Berth and reference runs alternate. Ratio is Berth's median over the " +
			"reference's (for TTFB, the difference). MB/s is 10^6 bytes per second of body received by the client, up to its last byte.",
		"The machine has few cores and the client, Berth and the reference share them, so a server that burns more CPU per byte " +
			"also slows the client down: that is part of what is measured.",
		"Peak RSS is VmHWM, which counts the pages of a process's own binary. Before the run the Berth and Distribution " +
			"binaries are written out and dropped from the page cache, so each is read in as an installed binary is: a binary " +
			"the linker has just written sits in the page cache in large folios that the kernel maps whole with huge pages, " +
			"which here made a fresh Berth about 8 MB larger than the same file read back from disk.",
	}
}
