package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const readBuf = 256 << 10

func (h *harness) blobURL(base string, b blobFile) string {
	return base + "/v2/" + blobsRepo + "/blobs/" + b.Digest
}

func (h *harness) fileURL(b blobFile) string {
	return h.ref.Files + "/files/" + strings.TrimPrefix(b.Digest, "sha256:")
}

// get is one timed download bounded by the fetch timeout.
func (h *harness) get(ctx context.Context, c *http.Client, url string, size int64, buf []byte, verify bool) (fetchResult, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
	defer cancel()
	return fetch(ctx, c, url, size, buf, verify)
}

// fillWarm makes the warm berth hold b: a first (cold) download checked
// against the digest, then one untimed warm read.
func (h *harness) fillWarm(ctx context.Context, b blobFile) error {
	buf := make([]byte, readBuf)
	r, err := h.get(ctx, h.viaWarm, h.blobURL(h.warm.URL, b), b.Size, buf, true)
	if err != nil {
		return fmt.Errorf("fill %s: %w", sizeLabel(b.Size), err)
	}
	if r.Digest != b.Digest {
		return fmt.Errorf("berth served %s for %s", r.Digest, b.Digest)
	}
	_, err = h.get(ctx, h.viaWarm, h.blobURL(h.warm.URL, b), b.Size, buf, false)
	return err
}

// cpuPerGB is CPU milliseconds per 10^9 bytes.
func cpuPerGB(cpu time.Duration, bytes int64) float64 {
	if bytes == 0 {
		return 0
	}
	return float64(cpu.Milliseconds()) / (float64(bytes) / 1e9)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n int64) float64 { return float64(n) / miB }

// 1. Warm blob, single stream.
func (h *harness) warmSingle(ctx context.Context, s *Section) error {
	s.Intro = "One client downloads a blob that Berth already holds, over a keep-alive connection, alternating with the " +
		"same bytes from the sendfile server. Target: at least 0.9× the sendfile server's throughput."
	buf := make([]byte, readBuf)
	for i, sr := range h.cfg.Single {
		b := h.single[i]
		if err := h.fillWarm(ctx, b); err != nil {
			return err
		}
		// One untimed read of the reference too: its connection and page cache.
		if _, err := h.get(ctx, h.direct, h.fileURL(b), b.Size, buf, false); err != nil {
			return err
		}
		row := s.add(&Row{Case: sizeLabel(b.Size), Measure: "throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0),
			RefName: "sendfile", Target: &Target{atLeastRatio, 0.9, "≥ 0.9×"}})
		var bCPU, rCPU time.Duration
		var bytes int64
		for rep := 0; rep < sr.Reps; rep++ {
			c0 := cpuTime(h.ref.Pid())
			r, err := h.get(ctx, h.direct, h.fileURL(b), b.Size, buf, false)
			if err != nil {
				return err
			}
			rCPU += cpuTime(h.ref.Pid()) - c0
			row.Ref.Add(r.MBps())
			c0 = cpuTime(h.warm.Pid())
			r, err = h.get(ctx, h.viaWarm, h.blobURL(h.warm.URL, b), b.Size, buf, false)
			if err != nil {
				return err
			}
			bCPU += cpuTime(h.warm.Pid()) - c0
			bytes += r.Bytes
			row.Berth.Add(r.MBps())
			h.logf("  %s warm: berth %.0f MB/s, sendfile %.0f MB/s", sizeLabel(b.Size), row.Berth.V[rep], row.Ref.V[rep])
		}
		bc, rc := cpuPerGB(bCPU, bytes), cpuPerGB(rCPU, bytes)
		s.note("%s: server CPU per GB sent: Berth %s ms, sendfile server %s ms.", sizeLabel(b.Size), fmtNum(bc, 0), fmtNum(rc, 0))
		row.Why = warmWhy(bc, rc)
	}
	last := h.single[len(h.single)-1]
	h.profile(ctx, "1", fmt.Sprintf("scenario 1, %s warm blob, single stream", sizeLabel(last.Size)), []focus{
		{"internal/poll.SendFile", "sendfile"},
		{"berth/registry.(*Server).ServeHTTP", "the registry handler"},
	}, nil, func(ctx context.Context) {
		buf := make([]byte, readBuf)
		for i := 0; i < 1000 && ctx.Err() == nil; i++ {
			fetch(ctx, h.viaWarm, h.blobURL(h.warm.URL, last), last.Size, buf, false)
		}
	})
	return nil
}

// sharesSentence names the cumulative CPU shares found, in focus order.
func sharesSentence(lead string, sh map[string]float64, fs []focus) string {
	var parts []string
	for _, f := range fs {
		if v, ok := sh[f.fn]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", f.label, v))
		}
	}
	return lead + " " + strings.Join(parts, ", ") + "."
}

// warmWhy reads a warm-blob miss from the CPU both servers used.
func warmWhy(bc, rc float64) string {
	why := fmt.Sprintf("Berth serves a stored blob with sendfile like the reference (io.Copy from the *os.File reaches the "+
		"connection's ReadFrom), and it spent %s ms of CPU per GB sent against the reference's %s ms; ", fmtNum(bc, 0), fmtNum(rc, 0))
	if bc > 1.5*rc+20 {
		return why + "that extra CPU, on the same two cores as the client, is the likely cause."
	}
	return why + "with CPU that close, the gap is more likely scheduling noise on two shared cores than work on Berth's " +
		"path; the min–max ranges show how much the machine moved between runs."
}

// 2. Warm blobs, parallel streams.
func (h *harness) warmParallel(ctx context.Context, s *Section) error {
	n := h.cfg.ParStreams
	s.Intro = fmt.Sprintf("%d clients at once each download a different %s blob that Berth holds; aggregate throughput "+
		"(all bytes over the wall time to the last byte) against the same %d downloads from the sendfile server. "+
		"Target: at least 0.9×.", n, sizeLabel(h.cfg.ParSize), n)
	for _, b := range h.par {
		if err := h.fillWarm(ctx, b); err != nil {
			return err
		}
	}
	row := s.add(&Row{Case: fmt.Sprintf("%d × %s", n, sizeLabel(h.cfg.ParSize)), Measure: "aggregate throughput",
		Berth: sample("MB/s", 0), Ref: sample("MB/s", 0), RefName: "sendfile", Target: &Target{atLeastRatio, 0.9, "≥ 0.9×"}})
	var bu, fu []string
	var sizes []int64
	for _, b := range h.par {
		bu, fu, sizes = append(bu, h.blobURL(h.warm.URL, b)), append(fu, h.fileURL(b)), append(sizes, b.Size)
	}
	total := float64(int64(n) * h.cfg.ParSize)
	var bCPU, rCPU time.Duration
	// One untimed round on the reference: its connections and page cache.
	wctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
	_, _, err := fetchParallel(wctx, h.direct, fu, sizes, readBuf)
	cancel()
	if err != nil {
		return err
	}
	for rep := 0; rep < h.cfg.ParReps; rep++ {
		fctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
		c0 := cpuTime(h.ref.Pid())
		_, wall, err := fetchParallel(fctx, h.direct, fu, sizes, readBuf)
		rCPU += cpuTime(h.ref.Pid()) - c0
		if err != nil {
			cancel()
			return err
		}
		row.Ref.Add(total / wall.Seconds() / 1e6)
		c0 = cpuTime(h.warm.Pid())
		_, wall, err = fetchParallel(fctx, h.viaWarm, bu, sizes, readBuf)
		bCPU += cpuTime(h.warm.Pid()) - c0
		cancel()
		if err != nil {
			return err
		}
		row.Berth.Add(total / wall.Seconds() / 1e6)
		h.logf("  %d streams: berth %.0f MB/s, sendfile %.0f MB/s", n, row.Berth.V[rep], row.Ref.V[rep])
	}
	bytes := int64(total) * int64(h.cfg.ParReps)
	bc, rc := cpuPerGB(bCPU, bytes), cpuPerGB(rCPU, bytes)
	s.note("Server CPU per GB sent: Berth %s ms, sendfile server %s ms.", fmtNum(bc, 0), fmtNum(rc, 0))
	row.Why = warmWhy(bc, rc)
	return nil
}

// coldBerth starts a fresh berth and makes it ask the upstream for the
// blobs manifest, so its upstream connection is set up as in a real pull.
func (h *harness) coldBerth(ctx context.Context, conns int) (*berthProc, *http.Client, error) {
	b, err := h.startBerth(ctx, berthOpts{admin: h.admin})
	if err != nil {
		return nil, nil, err
	}
	c := newClient(conns)
	if err := h.warmClient(ctx, c, b.URL); err != nil {
		b.Stop()
		return nil, nil, err
	}
	if err := h.ref.Reset(ctx); err != nil {
		b.Stop()
		return nil, nil, err
	}
	return b, c, nil
}

// 3. Cold blob fill.
func (h *harness) coldFill(ctx context.Context, s *Section) error {
	b := h.cold
	s.Intro = fmt.Sprintf("A fresh Berth is asked for a %s blob it does not have: it streams the blob from the upstream "+
		"to the client while writing and hashing it, and releases the last byte once the blob verified; its commit "+
		"(fsync, rename, index) follows. Against the client pulling the same blob from the upstream directly. Targets: "+
		"throughput at least 0.8× direct; time to first byte within 5 ms of direct.", sizeLabel(b.Size))
	thr := s.add(&Row{Case: sizeLabel(b.Size), Measure: "throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0),
		RefName: "direct", Target: &Target{atLeastRatio, 0.8, "≥ 0.8×"}})
	ttfb := s.add(&Row{Case: sizeLabel(b.Size), Measure: "time to first byte", Berth: sample("ms", 2), Ref: sample("ms", 2),
		RefName: "direct", Target: &Target{atMostDelta, 5, "≤ +5 ms"}})
	tail := s.add(&Row{Case: sizeLabel(b.Size), Measure: "wait for the last byte", Berth: sample("ms", 1), Ref: sample("ms", 1),
		RefName: "direct"})
	gets := s.add(&Row{Case: sizeLabel(b.Size), Measure: "upstream GETs of the blob", Berth: sample("", 0)})
	gets.NoRatio = true
	buf := make([]byte, readBuf)
	var bCPU, uCPU time.Duration
	var bytes int64
	for rep := 0; rep < h.cfg.ColdReps; rep++ {
		c0 := cpuTime(h.ref.Pid())
		r, err := h.get(ctx, h.direct, h.blobURL(h.ref.Upstream, b), b.Size, buf, false)
		uCPU += cpuTime(h.ref.Pid()) - c0
		if err != nil {
			return err
		}
		thr.Ref.Add(r.MBps())
		ttfb.Ref.Add(ms(r.TTFB))
		tail.Ref.Add(ms(r.Tail))
		bp, c, err := h.coldBerth(ctx, 4)
		if err != nil {
			return err
		}
		c0 = cpuTime(bp.Pid())
		r, err = h.get(ctx, c, h.blobURL(bp.URL, b), b.Size, buf, false)
		bCPU += cpuTime(bp.Pid()) - c0
		st, serr := h.ref.Stats(ctx)
		bp.Stop()
		closeIdle(c)
		if err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
		bytes += r.Bytes
		thr.Berth.Add(r.MBps())
		ttfb.Berth.Add(ms(r.TTFB))
		tail.Berth.Add(ms(r.Tail))
		gets.Berth.Add(float64(st.BlobGets[b.Digest]))
		h.logf("  cold %s: berth %.0f MB/s ttfb %.2f ms tail %.1f ms; direct %.0f MB/s ttfb %.2f ms",
			sizeLabel(b.Size), thr.Berth.V[rep], ttfb.Berth.V[rep], tail.Berth.V[rep], thr.Ref.V[rep], ttfb.Ref.V[rep])
	}
	bc, uc := cpuPerGB(bCPU, bytes), cpuPerGB(uCPU, bytes)
	s.note("Server CPU per GB: Berth %s ms to fill and send (receive, hash, write, sendfile to the client); the upstream %s ms "+
		"to send it directly.", fmtNum(bc, 0), fmtNum(uc, 0))
	s.note("\"Wait for the last byte\" is the time between the client holding all but the last byte and the last byte: " +
		"for Berth, the end of the hash and the check of the digest (the commit follows it).")
	tailMed, totalMed := tail.Berth.Median(), float64(b.Size)/thr.Berth.Median()/1e3 // ms
	direct := thr.Ref.Median()
	why := fmt.Sprintf("Every byte of a cold fill costs Berth %s ms of CPU per GB (received from the upstream, hashed, "+
		"written to the temporary file, sent to the client from that file with sendfile) where the direct "+
		"pull costs the upstream %s ms per GB (one sendfile). ", fmtNum(bc, 0), fmtNum(uc, 0))
	if shaGB := 1e6 / h.shaMBps; h.shaMBps > 0 && h.shaMBps < 0.8*direct {
		why += fmt.Sprintf("sha256 alone ran at %s MB/s on one core here, below 0.8× of direct (%s MB/s): no fill that "+
			"verifies the digest as it streams can meet this target on this machine. What Berth can win back is the "+
			"rest, about %s ms of CPU per GB beyond hashing. ", fmtNum(h.shaMBps, 0), fmtNum(0.8*direct, 0), fmtNum(max(0, bc-shaGB), 0))
	}
	why += fmt.Sprintf("The wait for the last byte (the digest check before it is released) is %s ms of the "+
		"median %s ms download (%.0f%%).", fmtNum(tailMed, 0), fmtNum(totalMed, 0), 100*tailMed/totalMed)
	thr.Why = why
	ttfb.Why = "Berth answers only once the upstream's headers arrived (its temporary file is created meanwhile), and " +
		"the first bytes reach the client after they were written and hashed; the excess is that path and the wakeups " +
		"of the goroutines along it on a machine whose cores the client and the upstream share."
	// A long cold fill on the warm berth, under the profiler.
	mem := h.mem
	fillFocus := []focus{
		{"berth/proxy.(*Proxy).doFill", "the fill loop"},
		{"crypto/internal/fips140/sha256.(*Digest).Write", "sha256"},
		{"os.(*File).Write", "writing the temporary file"},
		{"berth/upstream.(*watchedBody).Read", "reading from the upstream"},
		{"berth/registry.sendRange", "sending to the client"},
		{"os.(*File).ReadAt", "reading the temporary file back (an encrypted fill)"},
	}
	h.profile(ctx, "3", fmt.Sprintf("scenario 3, cold fill (of the %s blob of scenario 7)", sizeLabel(mem.Size)), fillFocus, func(sh map[string]float64) {
		if len(sh) > 0 {
			thr.Why += " " + sharesSentence("Where Berth's CPU goes in a cold fill (cumulative shares of a CPU profile, see Profiles):", sh, fillFocus)
		}
		if cores, ok := sh[coresKey]; ok && cores < 1.25 && sh["berth/proxy.(*Proxy).doFill"] > 50 {
			thr.Why += fmt.Sprintf(" During that profile Berth used %.2f of the %d cores on average, %.0f%% of it in the fill loop: "+
				"even with the upstream read ahead in its own goroutine and each chunk hashed while it is written, "+
				"one fill is bounded by the slower of sha256 and the file write on one core.", cores, numCPU(), sh["berth/proxy.(*Proxy).doFill"])
		}
	}, func(ctx context.Context) {
		// Not cut when the profile ends: the fill would go on detached
		// and disturb the next scenario.
		h.get(context.WithoutCancel(ctx), h.viaWarm, h.blobURL(h.warm.URL, mem), mem.Size, make([]byte, readBuf), false)
	})
	return nil
}

// ttfbStats appends min, median and max TTFB (ms) of a storm to the rows.
func ttfbStats(res []fetchResult, lo, mid, hi *Sample) {
	var t Sample
	for _, r := range res {
		t.Add(ms(r.TTFB))
	}
	lo.Add(t.Min())
	mid.Add(t.Median())
	hi.Add(t.Max())
}

// 4. Concurrent cold pulls.
func (h *harness) storm(ctx context.Context, s *Section) error {
	b := h.stormBlob
	s.Intro = fmt.Sprintf("N clients ask a fresh Berth for the same %s blob at the same moment. Berth must fetch it "+
		"from the upstream once and stream it to every client. Against N clients pulling it from the upstream directly "+
		"(N upstream GETs). TTFB is per client; each cell is over runs of the per-run minimum, median or maximum across clients.",
		sizeLabel(b.Size))
	for _, n := range h.cfg.StormN {
		cs := fmt.Sprintf("%d clients", n)
		gets := s.add(&Row{Case: cs, Measure: "upstream GETs of the blob", Berth: sample("", 0), Ref: sample("", 0),
			RefName: "direct", NoRatio: true, Target: &Target{exactlyAbs, 1, "= 1"}})
		agg := s.add(&Row{Case: cs, Measure: "aggregate throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0), RefName: "direct"})
		lo := s.add(&Row{Case: cs, Measure: "TTFB, fastest client", Berth: sample("ms", 1), Ref: sample("ms", 1), RefName: "direct"})
		mid := s.add(&Row{Case: cs, Measure: "TTFB, median client", Berth: sample("ms", 1), Ref: sample("ms", 1), RefName: "direct"})
		hi := s.add(&Row{Case: cs, Measure: "TTFB, slowest client", Berth: sample("ms", 1), Ref: sample("ms", 1), RefName: "direct"})
		var hwm Sample
		for rep := 0; rep < h.cfg.StormReps; rep++ {
			urls, sizes := make([]string, n), make([]int64, n)
			for i := range urls {
				urls[i], sizes[i] = h.blobURL(h.ref.Upstream, b), b.Size
			}
			dc := newClient(n + 8)
			if err := h.ref.Reset(ctx); err != nil {
				return err
			}
			fctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
			res, wall, err := fetchParallel(fctx, dc, urls, sizes, readBuf)
			cancel()
			closeIdle(dc)
			if err != nil {
				return err
			}
			st, err := h.ref.Stats(ctx)
			if err != nil {
				return err
			}
			gets.Ref.Add(float64(st.BlobGets[b.Digest]))
			agg.Ref.Add(float64(int64(n)*b.Size) / wall.Seconds() / 1e6)
			ttfbStats(res, &lo.Ref, &mid.Ref, &hi.Ref)

			bp, c, err := h.coldBerth(ctx, n+8)
			if err != nil {
				return err
			}
			for i := range urls {
				urls[i] = h.blobURL(bp.URL, b)
			}
			fctx, cancel = context.WithTimeout(ctx, h.cfg.FetchTimeout)
			res, wall, err = fetchParallel(fctx, c, urls, sizes, readBuf)
			cancel()
			peak, perr := peakRSS(bp.Pid())
			st, serr := h.ref.Stats(ctx)
			bp.Stop()
			closeIdle(c)
			if err != nil {
				return err
			}
			if perr != nil {
				return perr
			}
			if serr != nil {
				return serr
			}
			hwm.Add(mib(peak))
			gets.Berth.Add(float64(st.BlobGets[b.Digest]))
			agg.Berth.Add(float64(int64(n)*b.Size) / wall.Seconds() / 1e6)
			ttfbStats(res, &lo.Berth, &mid.Berth, &hi.Berth)
			h.logf("  %d clients: berth %.0f MB/s, %d upstream GETs, peak RSS %.1f MiB; direct %.0f MB/s",
				n, agg.Berth.V[rep], st.BlobGets[b.Digest], mib(peak), agg.Ref.V[rep])
		}
		if n == h.cfg.StormN[len(h.cfg.StormN)-1] {
			h.stormHWM, h.stormN = hwm, n
			h.stormHWM.Unit, h.stormHWM.Prec = "MiB", 1
		}
		gets.Why = "Concurrent requests for a missing blob are meant to join one fill (proxy.fillGroup); more than one GET " +
			"means requests raced past it or a stream was resumed with a Range request."
	}
	return nil
}

// memStats reads Berth's cumulative allocated bytes and allocations from
// its metrics endpoint, when it has an admin listener.
func (h *harness) memStats(ctx context.Context) ([]float64, error) {
	if h.warm.AdminURL == "" {
		return nil, errSkipped
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.warm.AdminURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	vals := []float64{-1, -1}
	body, err := readAllLimit(resp.Body, 4<<20)
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(body), "\n") {
		var v float64
		switch {
		case strings.HasPrefix(l, "go_memstats_alloc_bytes_total "):
			fmt.Sscan(strings.TrimPrefix(l, "go_memstats_alloc_bytes_total "), &v)
			vals[0] = v
		case strings.HasPrefix(l, "go_memstats_mallocs_total "):
			fmt.Sscan(strings.TrimPrefix(l, "go_memstats_mallocs_total "), &v)
			vals[1] = v
		}
	}
	if vals[0] < 0 || vals[1] < 0 {
		return nil, errSkipped
	}
	return vals, nil
}
