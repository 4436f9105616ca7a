package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

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
		}
		s.note("%s: %s.", cs, cpuNote)
		why := fmt.Sprintf("The load generator and both servers share two cores, so requests/s follows the server's CPU per "+
			"request: %s. Per request Berth routes the name, looks the manifest up in its store (by tag: the tag in pebble "+
			"first), records the pull, and logs and counts the request; the upstream does a map lookup.", cpuNote)
		rps.Why, p99.Why = why, why
	}
	manFocus := []focus{
		{"berth/registry.(*Server).ServeHTTP", "Berth's handler"},
		{"berth/store.(*Store).GetTag", "the pebble read of the tag"},
		{"berth/store.(*Store).TouchImage", "recording the pull (an entry in the access-time table)"},
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
