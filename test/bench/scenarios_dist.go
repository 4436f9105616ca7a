package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// distRow adds a row comparing Berth with Distribution. more says whether
// more is better (throughput) or less (latency, memory); either way the
// target is Berth at least as good as Distribution.
func distRow(s *Section, cs, measure, unit string, prec int, more bool) *Row {
	t := &Target{atLeastRatio, 1, "≥ 1.0×"}
	if !more {
		t = &Target{atMostRatio, 1, "≤ 1.0×"}
	}
	return s.add(&Row{Case: cs, Measure: measure, Berth: sample(unit, prec), Ref: sample(unit, prec),
		RefName: "distribution", Target: t, Why: distWhy(cs, measure)})
}

// 10. Distribution v3.1.1 as a peer: the same pulls against Berth and
// against Distribution in proxy mode over the same upstream.
func (h *harness) distPeer(ctx context.Context, s *Section) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DistTime)
	defer cancel()
	s.Intro = fmt.Sprintf("Distribution %s (`registry serve`, proxy mode with `remoteurl` the same upstream, filesystem "+
		"storage in a temporary directory, log level error) beside Berth in the cases of scenarios 1–7, alternating runs. "+
		"Reference is Distribution; the ratio is Berth over Distribution. Targets: Berth at least as fast (≥ 1.0×) and no "+
		"slower or bigger (≤ 1.0× for latency and memory). Warm cases run as in scenarios 1, 2 and 6 (at most 5 runs); "+
		"manifests one run of at most 5 s per cell; cold cases %d run(s) on fresh servers; concurrent cold clients one run. "+
		"The whole scenario is bounded by %s.", distVersion, h.cfg.DistReps, h.cfg.DistTime)
	s.note("Distribution's proxy asks the upstream for the tag on every manifest request by tag (proxyTagService.Get), and " +
		"sends every request for a blob whose fill is in flight to the upstream directly instead of joining the fill; " +
		"both show in its rows.")
	d, err := h.startDist(ctx)
	if err != nil {
		return err
	}
	defer d.Stop()
	dc := newClient(128)
	defer closeIdle(dc)
	if err := h.warmClient(ctx, dc, d.URL); err != nil {
		return fmt.Errorf("distribution: %w", err)
	}
	steps := []func(context.Context, *Section, *berthProc, *http.Client) error{
		h.distWarm, h.distManifests, h.distImage, h.distCold, h.distStorm,
	}
	for _, st := range steps {
		if err := st(ctx, s, d, dc); err != nil {
			return err
		}
	}
	return nil
}

// distWarm: the largest single-stream blob and the parallel streams, warm in both.
func (h *harness) distWarm(ctx context.Context, s *Section, d *berthProc, dc *http.Client) error {
	b := h.single[len(h.single)-1]
	buf := make([]byte, readBuf)
	for _, base := range []string{d.URL, d.URL} { // fill, then one untimed warm read
		if _, err := h.get(ctx, dc, h.blobURL(base, b), b.Size, buf, false); err != nil {
			return fmt.Errorf("distribution warm %s: %w", sizeLabel(b.Size), err)
		}
	}
	if err := h.fillWarm(ctx, b); err != nil {
		return err
	}
	one := distRow(s, "warm "+sizeLabel(b.Size)+", single stream", "throughput", "MB/s", 0, true)
	for rep := 0; rep < min(h.cfg.Single[len(h.single)-1].Reps, 5); rep++ {
		r, err := h.get(ctx, dc, h.blobURL(d.URL, b), b.Size, buf, false)
		if err != nil {
			return err
		}
		one.Ref.Add(r.MBps())
		if r, err = h.get(ctx, h.viaWarm, h.blobURL(h.warm.URL, b), b.Size, buf, false); err != nil {
			return err
		}
		one.Berth.Add(r.MBps())
	}
	var bu, du []string
	var sizes []int64
	for _, p := range h.par {
		if err := h.fillWarm(ctx, p); err != nil {
			return err
		}
		bu, du, sizes = append(bu, h.blobURL(h.warm.URL, p)), append(du, h.blobURL(d.URL, p)), append(sizes, p.Size)
	}
	par := distRow(s, fmt.Sprintf("warm %d × %s", len(h.par), sizeLabel(h.cfg.ParSize)), "aggregate throughput", "MB/s", 0, true)
	total := float64(int64(len(h.par)) * h.cfg.ParSize)
	for rep := -1; rep < min(h.cfg.ParReps, 5); rep++ { // rep -1 fills Distribution
		_, dw, err := fetchParallel(ctx, dc, du, sizes, readBuf)
		if err != nil {
			return fmt.Errorf("distribution parallel: %w", err)
		}
		_, bw, err := fetchParallel(ctx, h.viaWarm, bu, sizes, readBuf)
		if err != nil {
			return err
		}
		if rep >= 0 {
			par.Ref.Add(total / dw.Seconds() / 1e6)
			par.Berth.Add(total / bw.Seconds() / 1e6)
		}
	}
	h.logf("  distribution warm: single %s vs %s MB/s, parallel %s vs %s MB/s (berth vs distribution)",
		fmtNum(one.Berth.Median(), 0), fmtNum(one.Ref.Median(), 0), fmtNum(par.Berth.Median(), 0), fmtNum(par.Ref.Median(), 0))
	return nil
}

// distManifests: the image manifest by tag and digest, GET and HEAD, under load.
func (h *harness) distManifests(ctx context.Context, s *Section, d *berthProc, dc *http.Client) error {
	c := h.cfg
	hdr := http.Header{"Accept": {acceptManifests}}
	cb, cd := newClient(2*c.ManConns), newClient(2*c.ManConns)
	defer closeIdle(cb)
	defer closeIdle(cd)
	for _, v := range [][2]string{{"GET", "tag"}, {"GET", "digest"}, {"HEAD", "tag"}, {"HEAD", "digest"}} {
		ref := "v1"
		if v[1] == "digest" {
			ref = h.image.Digest
		}
		path := "/v2/" + imageRepo + "/manifests/" + ref
		cs := v[0] + " manifest by " + v[1]
		rps := distRow(s, cs, "requests/s", "", 0, true)
		p99 := distRow(s, cs, "p99 latency", "µs", 0, false)
		for rep := -1; rep < 1; rep++ { // rep -1 caches it in both
			dur := min(c.ManDur, 5*time.Second)
			if rep < 0 {
				dur = 0
			}
			ld := load(ctx, cd, c.ManConns, dur, c.ManMax, v[0], d.URL+path, hdr)
			lb := load(ctx, cb, c.ManConns, dur, c.ManMax, v[0], h.warm.URL+path, hdr)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rep < 0 {
				continue
			}
			if ld.Requests == 0 || lb.Requests == 0 {
				return fmt.Errorf("%s: no request answered 200 (distribution %d errors, berth %d)", cs, ld.Errors, lb.Errors)
			}
			rps.Ref.Add(ld.RPS())
			rps.Berth.Add(lb.RPS())
			p99.Ref.Add(float64(ld.Pct(0.99).Microseconds()))
			p99.Berth.Add(float64(lb.Pct(0.99).Microseconds()))
		}
	}
	return nil
}

// distImage: the image of scenario 6, warm in both.
func (h *harness) distImage(ctx context.Context, s *Section, d *berthProc, dc *http.Client) error {
	row := distRow(s, "warm whole image", "pull throughput", "MB/s", 0, true)
	for rep := -1; rep < h.cfg.ImageReps; rep++ { // rep -1 fills Distribution
		pctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
		rd, err := pullImage(pctx, dc, d.URL, imageRepo, "v1", h.cfg.ImagePar, rep < 0)
		if err != nil {
			cancel()
			return fmt.Errorf("distribution image pull: %w", err)
		}
		rb, err := pullImage(pctx, h.viaWarm, h.warm.URL, imageRepo, "v1", h.cfg.ImagePar, false)
		cancel()
		if err != nil {
			return err
		}
		if rep >= 0 {
			row.Ref.Add(float64(rd.Bytes) / rd.Wall.Seconds() / 1e6)
			row.Berth.Add(float64(rb.Bytes) / rb.Wall.Seconds() / 1e6)
		}
	}
	return nil
}
