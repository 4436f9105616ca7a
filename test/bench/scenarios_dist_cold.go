package main

import (
	"context"
	"fmt"
	"net/http"
)

// coldDist starts a fresh Distribution and makes it ask the upstream for
// the blobs manifest, as coldBerth does for Berth.
func (h *harness) coldDist(ctx context.Context, conns int) (*berthProc, *http.Client, error) {
	d, err := h.startDist(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := newClient(conns)
	if err := h.warmClient(ctx, c, d.URL); err != nil {
		d.Stop()
		return nil, nil, fmt.Errorf("distribution: %w", err)
	}
	if err := h.ref.Reset(ctx); err != nil {
		d.Stop()
		return nil, nil, err
	}
	return d, c, nil
}

// coldRun is one storm of n clients on a fresh server (Berth or
// Distribution) for blob b: its results, the upstream GETs of the blob and
// the server's peak RSS.
type coldRun struct {
	agg, ttfb, gets, rss float64
}

func (h *harness) coldStorm(ctx context.Context, dist bool, n int, b blobFile) (coldRun, error) {
	start := func() (*berthProc, *http.Client, error) { return h.coldBerth(ctx, n+8) }
	if dist {
		start = func() (*berthProc, *http.Client, error) { return h.coldDist(ctx, n+8) }
	}
	p, c, err := start()
	if err != nil {
		return coldRun{}, err
	}
	defer closeIdle(c)
	defer p.Stop()
	urls, sizes := make([]string, n), make([]int64, n)
	for i := range urls {
		urls[i], sizes[i] = h.blobURL(p.URL, b), b.Size
	}
	fctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
	res, wall, err := fetchParallel(fctx, c, urls, sizes, readBuf)
	cancel()
	if err != nil {
		return coldRun{}, err
	}
	peak, err := peakRSS(p.Pid())
	if err != nil {
		return coldRun{}, err
	}
	st, err := h.ref.Stats(ctx)
	if err != nil {
		return coldRun{}, err
	}
	var t Sample
	for _, r := range res {
		t.Add(ms(r.TTFB))
	}
	return coldRun{agg: float64(int64(n)*b.Size) / wall.Seconds() / 1e6, ttfb: t.Median(),
		gets: float64(st.BlobGets[b.Digest]), rss: mib(peak)}, nil
}

// distCold: one client on a fresh server (scenario 3's blob), and a fresh
// whole-image pull (scenario 6).
func (h *harness) distCold(ctx context.Context, s *Section, _ *berthProc, _ *http.Client) error {
	b := h.cold
	cs := "cold " + sizeLabel(b.Size) + ", one client"
	thr := distRow(s, cs, "throughput", "MB/s", 0, true)
	ttfb := distRow(s, cs, "time to first byte", "ms", 2, false)
	rss := distRow(s, cs, "peak RSS", "MiB", 1, false)
	img := distRow(s, "cold whole image (fresh server)", "pull throughput", "MB/s", 0, true)
	thr.Why = "Distribution's proxy writes each chunk to the client and to its store through one io.MultiWriter and " +
		"checks and commits its copy only after the client has every byte, so its client gets bytes before they are " +
		"verified. Berth sends no byte it has not hashed, writes every byte to the blob's file and makes it durable, and " +
		"releases the last byte only once the digest checks: on two cores shared with the client and the upstream, that " +
		"per-byte work (scenario 3's CPU per GB against sha256's rate in Machine) is the difference. It is the price of " +
		"never serving unverified bytes."
	img.Why = "The same as the cold blob above, per layer: each of Berth's fills hashes and writes every byte before it " +
		"is sent and holds the last one until the layer's digest checks, where Distribution's client has every byte " +
		"before its copy is checked."
	for rep := 0; rep < h.cfg.DistReps; rep++ {
		for _, dist := range []bool{true, false} {
			r, err := h.coldStorm(ctx, dist, 1, b)
			if err != nil {
				return err
			}
			row, tr, mem := &thr.Berth, &ttfb.Berth, &rss.Berth
			if dist {
				row, tr, mem = &thr.Ref, &ttfb.Ref, &rss.Ref
			}
			row.Add(r.agg)
			tr.Add(r.ttfb)
			mem.Add(r.rss)
		}
	}
	for rep := 0; rep < h.cfg.DistReps; rep++ {
		for _, dist := range []bool{true, false} {
			start := func() (*berthProc, *http.Client, error) { return h.coldBerth(ctx, 16) }
			if dist {
				start = func() (*berthProc, *http.Client, error) { return h.coldDist(ctx, 16) }
			}
			p, c, err := start()
			if err != nil {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
			r, err := pullImage(pctx, c, p.URL, imageRepo, "v1", h.cfg.ImagePar, false)
			cancel()
			p.Stop()
			closeIdle(c)
			if err != nil {
				return err
			}
			sm := &img.Berth
			if dist {
				sm = &img.Ref
			}
			sm.Add(float64(r.Bytes) / r.Wall.Seconds() / 1e6)
		}
	}
	return nil
}

// distStorm: scenario 4's concurrent cold clients, with upstream GETs and
// peak RSS; one run each, as Distribution sends every client to the upstream.
func (h *harness) distStorm(ctx context.Context, s *Section, _ *berthProc, _ *http.Client) error {
	b := h.stormBlob
	for _, n := range h.cfg.StormN {
		cs := fmt.Sprintf("%d concurrent cold clients, %s", n, sizeLabel(b.Size))
		gets := distRow(s, cs, "upstream GETs of the blob", "", 0, false)
		agg := distRow(s, cs, "aggregate throughput", "MB/s", 0, true)
		ttfb := distRow(s, cs, "TTFB, median client", "ms", 1, false)
		rss := distRow(s, cs, "peak RSS", "MiB", 1, false)
		for rep := 0; rep < 1; rep++ {
			for _, dist := range []bool{true, false} {
				r, err := h.coldStorm(ctx, dist, n, b)
				if err != nil {
					return err
				}
				pick := func(row *Row) *Sample {
					if dist {
						return &row.Ref
					}
					return &row.Berth
				}
				pick(gets).Add(r.gets)
				pick(agg).Add(r.agg)
				pick(ttfb).Add(r.ttfb)
				pick(rss).Add(r.rss)
			}
			h.logf("  %d cold clients: berth %s MB/s, %s GETs; distribution %s MB/s, %s GETs", n,
				fmtNum(agg.Berth.V[rep], 0), fmtNum(gets.Berth.V[rep], 0), fmtNum(agg.Ref.V[rep], 0), fmtNum(gets.Ref.V[rep], 0))
		}
	}
	return nil
}
