package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
		"to the client while writing and hashing it, and releases the last byte once the blob is verified and durable "+
		"(fsync, rename, index). Against the client pulling the same blob from the upstream directly. Targets: "+
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
	s.note("Server CPU per GB: Berth %s ms to fill and send (receive, hash, write, read back, send); the upstream %s ms "+
		"to send it directly.", fmtNum(bc, 0), fmtNum(uc, 0))
	s.note("\"Wait for the last byte\" is the time between the client holding all but the last byte and the last byte: " +
		"for Berth, the verification and commit (fsync of the file, rename, directory fsync, index write) of the fill.")
	tailMed, totalMed := tail.Berth.Median(), float64(b.Size)/thr.Berth.Median()/1e3 // ms
	direct := thr.Ref.Median()
	why := fmt.Sprintf("Every byte of a cold fill costs Berth %s ms of CPU per GB (received from the upstream, hashed, "+
		"written to the temporary file, read back with ReadAt, written to the client, flushed per chunk) where the direct "+
		"pull costs the upstream %s ms per GB (one sendfile). ", fmtNum(bc, 0), fmtNum(uc, 0))
	if shaGB := 1e6 / h.shaMBps; h.shaMBps > 0 && h.shaMBps < 0.8*direct {
		why += fmt.Sprintf("sha256 alone ran at %s MB/s on one core here, below 0.8× of direct (%s MB/s): no fill that "+
			"verifies the digest as it streams can meet this target on this machine. What Berth can win back is the "+
			"rest, about %s ms of CPU per GB beyond hashing. ", fmtNum(h.shaMBps, 0), fmtNum(0.8*direct, 0), fmtNum(max(0, bc-shaGB), 0))
	}
	why += fmt.Sprintf("The wait for the last byte (making the blob durable before it is released) is %s ms of the "+
		"median %s ms download (%.0f%%).", fmtNum(tailMed, 0), fmtNum(totalMed, 0), 100*tailMed/totalMed)
	thr.Why = why
	ttfb.Why = "Berth answers only once the upstream's headers arrived and its temporary file exists, and the first " +
		"bytes reach the client after they were written and hashed; the excess is that path."
	// A long cold fill on the warm berth, under the profiler.
	mem := h.mem
	fillFocus := []focus{
		{"berth/proxy.(*Proxy).doFill", "the fill loop"},
		{"crypto/internal/fips140/sha256.(*Digest).Write", "sha256"},
		{"os.(*File).Write", "writing the temporary file"},
		{"berth/upstream.(*watchedBody).Read", "reading from the upstream"},
		{"berth/registry.copyFlushing", "sending to the client"},
		{"os.(*File).ReadAt", "reading the temporary file back"},
	}
	h.profile(ctx, "3", fmt.Sprintf("scenario 3, cold fill (of the %s blob of scenario 7)", sizeLabel(mem.Size)), fillFocus, func(sh map[string]float64) {
		if len(sh) > 0 {
			thr.Why += " " + sharesSentence("Where Berth's CPU goes in a cold fill (cumulative shares of a CPU profile, see Profiles):", sh, fillFocus)
		}
		if cores, ok := sh[coresKey]; ok && cores < 1.25 && sh["berth/proxy.(*Proxy).doFill"] > 50 {
			thr.Why += fmt.Sprintf(" During that profile Berth used %.2f of the %d cores on average, %.0f%% of it in the fill loop: "+
				"even with the upstream read ahead in its own goroutine and each chunk hashed while it is written, "+
				"one fill is bounded by the slower of sha256 and the file write on one core, and the clients that follow it "+
				"are sent the bytes through user space rather than with sendfile.", cores, numCPU(), sh["berth/proxy.(*Proxy).doFill"])
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

// 5. Manifests, warm.
func (h *harness) manifests(ctx context.Context, s *Section) error {
	c := h.cfg
	s.Intro = fmt.Sprintf("%d keep-alive connections (one goroutine each) send the same manifest request in a loop for %s, "+
		"%d run(s) per cell, against the upstream serving the same manifest from memory. The manifest is the %d-layer "+
		"image's (%d bytes), cached in Berth, its tag fresh. Targets: at least 0.8× the upstream's requests/s and a p99 "+
		"latency at most 2× the upstream's.", c.ManConns, c.ManDur, c.ManReps, len(h.cfg.ImageSizes), len(h.image.Body))
	hdr := http.Header{"Accept": {acceptManifests}}
	for _, ref := range []string{"v1", h.image.Digest} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequestWithContext(ctx, m, h.warm.URL+"/v2/"+imageRepo+"/manifests/"+ref, nil)
			req.Header = hdr
			resp, err := h.viaWarm.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s manifest %s: %d", m, ref, resp.StatusCode)
			}
		}
	}
	cu, cb := newClient(2*c.ManConns), newClient(2*c.ManConns)
	defer closeIdle(cu)
	defer closeIdle(cb)
	type variant struct{ method, by, ref string }
	vs := []variant{{"GET", "tag", "v1"}, {"GET", "digest", h.image.Digest}, {"HEAD", "tag", "v1"}, {"HEAD", "digest", h.image.Digest}}
	var allocNotes []string
	for _, v := range vs {
		cs := v.method + " by " + v.by
		rps := s.add(&Row{Case: cs, Measure: "requests/s", Berth: sample("", 0), Ref: sample("", 0), RefName: "upstream",
			Target: &Target{atLeastRatio, 0.8, "≥ 0.8×"}})
		p50 := s.add(&Row{Case: cs, Measure: "p50 latency", Berth: sample("µs", 0), Ref: sample("µs", 0), RefName: "upstream"})
		p99 := s.add(&Row{Case: cs, Measure: "p99 latency", Berth: sample("µs", 0), Ref: sample("µs", 0), RefName: "upstream",
			Target: &Target{atMostRatio, 2, "≤ 2×"}})
		var bReq, uReq, bErr, uErr int
		var bCPU, uCPU time.Duration
		var allocB, mallocs float64
		for rep := 0; rep < c.ManReps; rep++ {
			c0 := cpuTime(h.ref.Pid())
			lu := load(ctx, cu, c.ManConns, c.ManDur, c.ManMax, v.method, h.ref.Upstream+"/v2/"+imageRepo+"/manifests/"+v.ref, hdr)
			uCPU += cpuTime(h.ref.Pid()) - c0
			c0 = cpuTime(h.warm.Pid())
			m0, _ := h.memStats(ctx)
			lb := load(ctx, cb, c.ManConns, c.ManDur, c.ManMax, v.method, h.warm.URL+"/v2/"+imageRepo+"/manifests/"+v.ref, hdr)
			m1, merr := h.memStats(ctx)
			bCPU += cpuTime(h.warm.Pid()) - c0
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if merr == nil && m0 != nil && lb.Requests > 0 {
				allocB += m1[0] - m0[0]
				mallocs += m1[1] - m0[1]
			}
			rps.Ref.Add(lu.RPS())
			rps.Berth.Add(lb.RPS())
			p50.Ref.Add(float64(lu.Pct(0.5)) / 1e3)
			p50.Berth.Add(float64(lb.Pct(0.5)) / 1e3)
			p99.Ref.Add(float64(lu.Pct(0.99)) / 1e3)
			p99.Berth.Add(float64(lb.Pct(0.99)) / 1e3)
			bReq, uReq, bErr, uErr = bReq+lb.Requests, uReq+lu.Requests, bErr+lb.Errors, uErr+lu.Errors
			h.logf("  %s: berth %.0f req/s p99 %v; upstream %.0f req/s p99 %v", cs, lb.RPS(), lb.Pct(0.99), lu.RPS(), lu.Pct(0.99))
		}
		if bReq == 0 || uReq == 0 {
			return fmt.Errorf("%s: no request succeeded (berth %d errors, upstream %d errors)", cs, bErr, uErr)
		}
		if bErr+uErr > 0 {
			s.note("%s: %d failed requests on Berth, %d on the upstream (not counted in requests/s).", cs, bErr, uErr)
		}
		bus, uus := float64(bCPU.Microseconds())/float64(bReq), float64(uCPU.Microseconds())/float64(uReq)
		cpuNote := fmt.Sprintf("server CPU per request: Berth %.1f µs, upstream %.1f µs", bus, uus)
		if allocB > 0 {
			cpuNote += fmt.Sprintf("; Berth allocated %s bytes in %.1f objects per request", fmtNum(allocB/float64(bReq), 0), mallocs/float64(bReq))
			allocNotes = append(allocNotes, cs)
		}
		s.note("%s: %s.", cs, cpuNote)
		why := fmt.Sprintf("The load generator and both servers share two cores, so requests/s follows the server's CPU per "+
			"request: %s. Per request Berth routes the name, looks the manifest up in its store (by tag: the tag in pebble "+
			"first), records the pull, and logs and counts the request; the upstream does a map lookup.", cpuNote)
		rps.Why, p99.Why = why, why
	}
	manFocus := []focus{
		{"berth/registry.(*Server).ServeHTTP", "Berth's handler"},
		{"berth/cache.(*Store).GetTag", "the pebble read of the tag"},
		{"berth/cache.(*Store).TouchImage", "recording the pull (a pebble read and write)"},
		{"net/http.(*conn).readRequest", "parsing the request (net/http)"},
		{"net/http.(*response).finishRequest", "flushing the response (net/http)"},
	}
	byTag := s.Rows[0]
	h.profile(ctx, "5", "scenario 5, GET manifest by tag, 32 connections", manFocus, func(sh map[string]float64) {
		if len(sh) > 0 {
			byTag.Why += " " + sharesSentence("Where Berth's CPU goes under this load (cumulative shares of a CPU profile, see Profiles):", sh, manFocus)
		}
	}, func(ctx context.Context) {
		load(ctx, cb, c.ManConns, time.Duration(c.ProfSecs+2)*time.Second, c.ManMax, http.MethodGet,
			h.warm.URL+"/v2/"+imageRepo+"/manifests/v1", hdr)
	})
	return nil
}

// 6. Whole image pulls.
func (h *harness) imagePulls(ctx context.Context, s *Section) error {
	c := h.cfg
	var total int64
	for _, n := range c.ImageSizes {
		total += n
	}
	s.Intro = fmt.Sprintf("A %d-layer image (%s in all, layers from %s to %s) is pulled like containerd does: the manifest by tag, "+
		"then the config and the layers with %d fetches in parallel. Cold is a fresh Berth per run (its manifest request goes "+
		"to the upstream too); warm is a Berth that already holds the image. Against the same pull from the upstream directly. "+
		"MB/s is the image's bytes over the pull's wall time. No target is set for this scenario.",
		len(c.ImageSizes), sizeLabel(total), sizeLabel(c.ImageSizes[0]), sizeLabel(c.ImageSizes[len(c.ImageSizes)-1]), c.ImagePar)
	cold := s.add(&Row{Case: "cold (fresh Berth)", Measure: "pull throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0), RefName: "direct"})
	warm := s.add(&Row{Case: "warm", Measure: "pull throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0), RefName: "direct"})
	var tCold, tWarm, tDirect Sample
	pull := func(cl *http.Client, base string) (pullResult, error) {
		pctx, cancel := context.WithTimeout(ctx, c.FetchTimeout)
		defer cancel()
		return pullImage(pctx, cl, base, imageRepo, "v1", c.ImagePar, false)
	}
	if _, err := pull(h.viaWarm, h.warm.URL); err != nil {
		return fmt.Errorf("fill the warm berth: %w", err)
	}
	for rep := 0; rep < c.ImageReps; rep++ {
		d, err := pull(h.direct, h.ref.Upstream)
		if err != nil {
			return err
		}
		w, err := pull(h.viaWarm, h.warm.URL)
		if err != nil {
			return err
		}
		bp, err := h.startBerth(ctx, berthOpts{admin: h.admin})
		if err != nil {
			return err
		}
		cc := newClient(16)
		cr, err := pull(cc, bp.URL)
		bp.Stop()
		closeIdle(cc)
		if err != nil {
			return err
		}
		mb := func(p pullResult) float64 { return float64(p.Bytes) / p.Wall.Seconds() / 1e6 }
		cold.Berth.Add(mb(cr))
		cold.Ref.Add(mb(d))
		warm.Berth.Add(mb(w))
		warm.Ref.Add(mb(d))
		tCold.Add(ms(cr.Wall))
		tWarm.Add(ms(w.Wall))
		tDirect.Add(ms(d.Wall))
		h.logf("  image: cold %v, warm %v, direct %v", cr.Wall, w.Wall, d.Wall)
	}
	tCold.Unit, tWarm.Unit, tDirect.Unit = "ms", "ms", "ms"
	s.note("Pull time: cold %s, warm %s, direct %s.", tCold.String(), tWarm.String(), tDirect.String())
	return nil
}

// 7. Memory.
func (h *harness) memory(ctx context.Context, s *Section) error {
	b := h.mem
	s.Intro = fmt.Sprintf("Peak resident memory (VmHWM from /proc/<pid>/status) of a fresh Berth process per run: after "+
		"start and one manifest request (idle), after a single client's cold fill of a %s blob, and, from scenario 4, "+
		"after %d concurrent cold clients. Target: at most 64 MiB.", sizeLabel(b.Size), h.stormN)
	idle := s.add(&Row{Case: "idle, after start", Measure: "peak RSS", Berth: sample("MiB", 1)})
	fill := s.add(&Row{Case: sizeLabel(b.Size) + " cold fill", Measure: "peak RSS", Berth: sample("MiB", 1),
		Target: &Target{atMostAbs, 64, "≤ 64 MiB"}})
	var thr Sample
	thr.Unit = "MB/s"
	buf := make([]byte, readBuf)
	for rep := 0; rep < h.cfg.MemReps; rep++ {
		bp, c, err := h.coldBerth(ctx, 4)
		if err != nil {
			return err
		}
		p0, err0 := peakRSS(bp.Pid())
		r, err := h.get(ctx, c, h.blobURL(bp.URL, b), b.Size, buf, false)
		p1, err1 := peakRSS(bp.Pid())
		bp.Stop()
		closeIdle(c)
		if err != nil {
			return err
		}
		if err0 != nil || err1 != nil {
			return fmt.Errorf("read VmHWM: %v %v", err0, err1)
		}
		idle.Berth.Add(mib(p0))
		fill.Berth.Add(mib(p1))
		thr.Add(r.MBps())
		h.logf("  %s cold fill: peak RSS %.1f MiB (idle %.1f MiB), %.0f MB/s", sizeLabel(b.Size), mib(p1), mib(p0), r.MBps())
	}
	s.note("The %s cold fills ran at %s.", sizeLabel(b.Size), thr.String())
	fill.Why = "The fill copies through fixed 256 KiB buffers, so growth with the blob's size would point at buffering " +
		"in the fill or the page cache being charged; compare with the idle row."
	if !h.stormHWM.Empty() {
		st := s.add(&Row{Case: fmt.Sprintf("%d concurrent cold clients", h.stormN), Measure: "peak RSS", Berth: h.stormHWM,
			Target: &Target{atMostAbs, 64, "≤ 64 MiB"}})
		st.Why = "Each client being served from a fill gets its own 256 KiB copy buffer (registry.copyFlushing) and a " +
			"goroutine, and the HTTP server's per-connection buffers; that grows with the number of clients."
	}
	return nil
}

// 8. Cluster morning storm.
func (h *harness) cluster(ctx context.Context, s *Section) error {
	c := h.cfg
	if !h.admin {
		return errors.New("this berth has no admin listener: cluster membership and metrics cannot be read")
	}
	var m imageManifest
	if err := json.Unmarshal(h.image.Body, &m); err != nil {
		return err
	}
	descs := append([]descriptor{m.Config}, m.Layers...)
	var blobBytes int64
	for _, d := range descs {
		blobBytes += d.Size
	}
	n, nn := c.ClusterClients, c.ClusterNodes
	s.Intro = fmt.Sprintf("%d clients, round-robin over %d fresh Berth nodes joined into one cluster (replicas 2, gossip and "+
		"peer listeners on 127.0.0.1 to 127.0.0.%d), pull the same cold image at the same moment like containerd: the %d-layer "+
		"image of scenario 6 (%s of blobs), the manifest by tag, then the config and the layers with %d fetches in parallel, each "+
		"client on connections of its own. Before each run every node sees %d alive members and has answered one manifest "+
		"request for another repository; each run has fresh nodes and data directories. Against the same %d clients pulling "+
		"from the upstream directly. Wall time is from the start to the last client done; the first client on each node (and "+
		"on the upstream) checks every digest it gets. Bytes between peers are the response bytes the nodes' peer listeners "+
		"logged for the image (the nodes run at log level info for this); client bytes from peers is "+
		"`berth_bytes_served_total{source=\"peer\"}` summed over the nodes. Target: one upstream GET per blob for the whole cluster.",
		n, nn, nn, len(descs)-1, sizeLabel(blobBytes), c.ClusterPar, nn, n)
	cs := fmt.Sprintf("%d clients × %d fetches, %d nodes", n, c.ClusterPar, nn)
	wall := s.add(&Row{Case: cs, Measure: "wall time, all clients done", Berth: sample("ms", 0), Ref: sample("ms", 0), RefName: "direct"})
	med := s.add(&Row{Case: cs, Measure: "pull time, median client", Berth: sample("ms", 0), Ref: sample("ms", 0), RefName: "direct"})
	gets := s.add(&Row{Case: cs, Measure: fmt.Sprintf("upstream GETs per blob (max of %d blobs)", len(descs)), Berth: sample("", 0),
		Ref: sample("", 0), RefName: "direct", NoRatio: true, Target: &Target{exactlyAbs, 1, "= 1"}})
	mans := s.add(&Row{Case: cs, Measure: "upstream GETs of the manifest", Berth: sample("", 0), Ref: sample("", 0),
		RefName: "direct", NoRatio: true})
	peer := s.add(&Row{Case: cs, Measure: "bytes between peers (peer listeners)", Berth: sample("MiB", 1)})
	viaPeer := s.add(&Row{Case: cs, Measure: "client bytes from peers (metrics)", Berth: sample("MiB", 1)})
	gets.Why = "Each digest has owner nodes (rendezvous hashing); a node that misses a blob asks its owners first and only " +
		"the first owner fills it from the upstream, so the cluster should fetch each blob once. More than one GET means a node " +
		"went to the upstream itself (no owner answered, or a peer's stream broke and was not resumed from another owner) or " +
		"two owners filled the same blob."
	var up, nodeCPU, upCPU, dirCPU, peerX Sample
	up.Unit, nodeCPU.Unit, upCPU.Unit, dirCPU.Unit = "ms", "s", "s", "s"
	up.Prec, nodeCPU.Prec, upCPU.Prec, dirCPU.Prec, peerX.Prec = 0, 2, 2, 2, 2
	bySource := map[string]*Sample{}
	var problems []string
	peerStatus := map[int]int{}
	peerAborted := 0
	t0 := time.Now()
	for rep := 0; rep < c.ClusterReps; rep++ {
		if rep > 0 && time.Since(t0)/time.Duration(rep)*time.Duration(rep+1) > c.ClusterTime {
			s.note("Stopped after %d of %d runs: another would have passed the scenario's limit of %s.", rep, c.ClusterReps, c.ClusterTime)
			break
		}
		// Directly from the upstream.
		if err := h.ref.Reset(ctx); err != nil {
			return err
		}
		u0 := cpuTime(h.ref.Pid())
		fctx, cancel := context.WithTimeout(ctx, c.FetchTimeout)
		d, err := h.imageStorm(fctx, []string{h.ref.Upstream}, n, c.ClusterPar)
		cancel()
		dirCPU.Add((cpuTime(h.ref.Pid()) - u0).Seconds())
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		st, err := h.ref.Stats(ctx)
		if err != nil {
			return err
		}
		dmax, _, _ := blobGets(st, descs)
		gets.Ref.Add(float64(dmax))
		mans.Ref.Add(float64(st.Counts["GET manifests"]))
		wall.Ref.Add(ms(d.Wall))
		med.Ref.Add(medianMs(d.Pulls))

		// Through a fresh cluster.
		nodes, took, err := h.startCluster(ctx, nn)
		if err != nil {
			return err
		}
		up.Add(ms(took))
		r, err := h.clusterRun(ctx, nodes)
		for i, nl := range r.logs {
			for _, p := range nl.Problems {
				problems = append(problems, nodes[i].name+": "+p)
			}
			for k, v := range nl.PeerStatus {
				peerStatus[k] += v
			}
			peerAborted += nl.PeerAborted
		}
		if err != nil {
			if len(problems) > 0 {
				err = fmt.Errorf("%w; the nodes logged: %s", err, strings.Join(problems[:min(len(problems), 3)], " | "))
			}
			return err
		}
		bmax, bzero, bsum := blobGets(r.st, descs)
		gets.Berth.Add(float64(bmax))
		mans.Berth.Add(float64(r.st.Counts["GET manifests"]))
		wall.Berth.Add(ms(r.storm.Wall))
		med.Berth.Add(medianMs(r.storm.Pulls))
		var pb int64
		for _, nl := range r.logs {
			pb += nl.PeerBlobBytes + nl.PeerManifestBytes
		}
		peer.Berth.Add(mib(pb))
		peerX.Add(float64(pb) / float64(blobBytes))
		viaPeer.Berth.Add(r.served["peer"] / miB)
		var servedAll float64
		for k, v := range r.served {
			servedAll += v
			if bySource[k] == nil {
				bySource[k] = &Sample{Unit: "MiB", Prec: 1}
			}
			bySource[k].Add(v / miB)
		}
		nodeCPU.Add(r.nodeCPU.Seconds())
		upCPU.Add(r.upCPU.Seconds())
		if math.Abs(servedAll-float64(r.storm.Bytes)) > 0.001*float64(r.storm.Bytes) {
			s.note("Run %d: the clients received %d bytes, the nodes' berth_bytes_served_total grew by %.0f.", rep+1, r.storm.Bytes, servedAll)
		}
		if bzero > 0 {
			s.note("Run %d: the upstream saw no GET for %d of the image's %d blobs.", rep+1, bzero, len(descs))
		}
		if hd := r.st.Counts["HEAD manifests"]; hd > 0 {
			s.note("Run %d: the upstream also saw %d HEAD requests for manifests.", rep+1, hd)
		}
		h.logf("  %d clients: cluster %v (up in %v), direct %v; upstream GETs per blob max %d (%d in all), manifest GETs %d; "+
			"peer bytes %.1f MiB (%.2f× the image)", n, r.storm.Wall.Round(time.Millisecond), took.Round(time.Millisecond),
			d.Wall.Round(time.Millisecond), bmax, bsum, r.st.Counts["GET manifests"], mib(pb), float64(pb)/float64(blobBytes))
	}
	s.note("From the first node's start until every node saw %d alive members: %s.", nn, up.String())
	s.note("Bytes between peers were %s× the image's blob bytes; if each blob went once from its filling owner to each "+
		"other node, that would be %d×.", peerX.String(), nn-1)
	var srcs []string
	for _, k := range []string{"store", "upstream", "peer", "stale", "local"} {
		if v := bySource[k]; v != nil {
			srcs = append(srcs, k+" "+v.String())
		}
	}
	if len(srcs) > 0 {
		s.note("Bytes the clients got, by where the serving node took them (berth_bytes_served_total summed over the nodes, "+
			"per run): %s; the %d clients received %s per run.", strings.Join(srcs, ", "), n,
			sizeLabel(int64(n)*(blobBytes+int64(len(h.image.Body)))))
	}
	s.note("Server CPU per run: the %d nodes %s in all and the upstream %s; directly, the upstream %s.",
		nn, nodeCPU.String(), upCPU.String(), dirCPU.String())
	delete(peerStatus, 200)
	if len(peerStatus) > 0 || peerAborted > 0 {
		s.note("Peer listeners answered other than 200: %v; %d peer responses were cut short.", peerStatus, peerAborted)
	}
	if len(problems) > 0 {
		s.note("Between seeing %d alive members and being stopped, the nodes logged %d warnings or errors; the first: `%s`.",
			nn, len(problems), trimLine(problems[0], 400))
	}
	return nil
}

// clusterRunResult is one storm through a cluster.
type clusterRunResult struct {
	storm   stormResult
	st      upstreamStats
	served  map[string]float64 // bytes served to clients during the storm by source, summed over nodes
	logs    []nodeLog          // complete: read after the nodes stopped
	nodeCPU time.Duration
	upCPU   time.Duration
}

// clusterRun warms each node (one manifest request for bench/blobs), runs
// the storm, reads the counters, stops the nodes and reads their logs.
func (h *harness) clusterRun(ctx context.Context, nodes []*clusterNode) (r clusterRunResult, err error) {
	alive := time.Now()
	defer func() {
		stopAt := time.Now()
		stopCluster(nodes)
		h.logf("  cluster stopped in %v", time.Since(stopAt).Round(time.Millisecond))
		for _, nd := range nodes {
			nl, lerr := readNodeLog(nd.logPath, imageRepo, alive, stopAt)
			if lerr != nil && err == nil {
				err = lerr
			}
			r.logs = append(r.logs, nl)
		}
	}()
	bases := make([]string, len(nodes))
	for i, nd := range nodes {
		bases[i] = nd.URL
		wc := newClient(2)
		err := h.warmClient(ctx, wc, nd.URL)
		closeIdle(wc)
		if err != nil {
			return r, fmt.Errorf("%s: %w", nd.name, err)
		}
	}
	served0 := make([]map[string]float64, len(nodes))
	for i, nd := range nodes {
		if served0[i], err = servedBySource(ctx, nd.berthProc); err != nil {
			return r, err
		}
	}
	if err := h.ref.Reset(ctx); err != nil {
		return r, err
	}
	cpu0 := make([]time.Duration, len(nodes))
	for i, nd := range nodes {
		cpu0[i] = cpuTime(nd.Pid())
	}
	u0 := cpuTime(h.ref.Pid())
	fctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
	r.storm, err = h.imageStorm(fctx, bases, h.cfg.ClusterClients, h.cfg.ClusterPar)
	cancel()
	r.upCPU = cpuTime(h.ref.Pid()) - u0
	for i, nd := range nodes {
		r.nodeCPU += cpuTime(nd.Pid()) - cpu0[i]
	}
	if err != nil {
		return r, err
	}
	if r.st, err = h.ref.Stats(ctx); err != nil {
		return r, err
	}
	r.served = map[string]float64{}
	for i, nd := range nodes {
		m, err := servedBySource(ctx, nd.berthProc)
		if err != nil {
			return r, err
		}
		for k, v := range m {
			r.served[k] += v - served0[i][k]
		}
	}
	return r, nil
}

// blobGets is the most upstream GETs any of descs got, how many got none,
// and the sum.
func blobGets(st upstreamStats, descs []descriptor) (most, zero, sum int) {
	for _, d := range descs {
		g := st.BlobGets[d.Digest]
		most, sum = max(most, g), sum+g
		if g == 0 {
			zero++
		}
	}
	return most, zero, sum
}

func medianMs(ds []time.Duration) float64 {
	var s Sample
	for _, d := range ds {
		s.Add(ms(d))
	}
	return s.Median()
}

func trimLine(s string, n int) string {
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
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
