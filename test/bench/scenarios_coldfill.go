package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// paceEnv, set in the reference server's environment, paces every response
// body of its upstream at that many bytes per second: an upstream behind a
// link of that speed.
const paceEnv = "BERTH_BENCH_PACE"

// pacedHandler wraps h so that response bodies leave at rate bytes/s.
func pacedHandler(h http.Handler, rate string) (http.Handler, error) {
	bps, err := strconv.ParseFloat(rate, 64)
	if err != nil || bps <= 0 {
		return nil, fmt.Errorf("%s=%q: want bytes per second", paceEnv, rate)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&pacedWriter{ResponseWriter: w, bps: bps}, r)
	}), nil
}

// pacedWriter sends at most bps bytes per second from its first write on,
// in pieces of 32 KiB, sleeping only when more than half a millisecond
// ahead, so the average holds without a timer per piece. It hides the
// ResponseWriter's ReadFrom, so the body is not sent with sendfile.
type pacedWriter struct {
	http.ResponseWriter
	bps   float64
	start time.Time
	sent  int64
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	if w.start.IsZero() {
		w.start = time.Now()
	}
	done := 0
	for done < len(p) {
		k := min(len(p)-done, 32<<10)
		n, err := w.ResponseWriter.Write(p[done : done+k])
		done += n
		w.sent += int64(n)
		if err != nil {
			return done, err
		}
		due := w.start.Add(time.Duration(float64(w.sent) / w.bps * float64(time.Second)))
		if d := time.Until(due); d > 500*time.Microsecond {
			time.Sleep(d)
		}
	}
	return done, nil
}

// shaCPUPerGB is the CPU time sha256 takes per 10^9 bytes on this thread,
// best of three over 64 MiB (getrusage of the thread, so a busy machine
// does not count its waiting).
func shaCPUPerGB() float64 {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	return bestPerGB(func() (int64, error) {
		hs := sha256.New()
		for range 64 {
			hs.Write(buf)
		}
		return 64 << 20, nil
	})
}

// pacedRows are the rows of one pacing of scenario 11.
type pacedRows struct {
	thr, ttfb, tail, cpu, floor, dist *Row
	// recvGB and relayGB are relayFloor's figures, measured once per run.
	recvGB, relayGB float64
	// The CPU per GB of the other two processes on the machine's cores,
	// in Berth's runs and in the direct ones: the upstream's (its
	// process) and the client's (this process, which verifies the digest
	// as it reads, as a real client does, in both).
	upGB, clientGB, upDirectGB, clientDirectGB Sample
}

func (h *harness) pacedRowsFor(s *Section, rate float64) pacedRows {
	cs := fmt.Sprintf("%s, upstream paced at %s MB/s", sizeLabel(h.cold.Size), fmtNum(rate/1e6, 0))
	var r pacedRows
	if rate == 0 {
		cs = sizeLabel(h.cold.Size) + ", loopback unpaced"
		r.thr = s.add(&Row{Case: cs, Measure: "throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0),
			RefName: "min(direct, sha256)", Target: &Target{atLeastRatio, 0.9, "≥ 0.9×"}})
	} else {
		r.thr = s.add(&Row{Case: cs, Measure: "throughput", Berth: sample("MB/s", 0), Ref: sample("MB/s", 0),
			RefName: "direct", Target: &Target{atLeastRatio, 0.97, "≥ 0.97×"}})
	}
	r.ttfb = s.add(&Row{Case: cs, Measure: "time to first byte", Berth: sample("ms", 2), Ref: sample("ms", 2),
		RefName: "direct", Target: &Target{atMostDelta, 5, "≤ +5 ms"}})
	r.tail = s.add(&Row{Case: cs, Measure: "wait for the last byte", Berth: sample("ms", 2), Ref: sample("ms", 2),
		RefName: "direct", NoRatio: true, Target: &Target{atMostAbs, 10, "≤ 10 ms"}})
	r.cpu = s.add(&Row{Case: cs, Measure: "server CPU per GB", Berth: sample("ms", 0), Ref: sample("ms", 0),
		RefName: "sha256 alone", Target: &Target{atMostRatio, 1.5, "≤ 1.5×"}})
	r.floor = s.add(&Row{Case: cs, Measure: "server CPU per GB", Berth: sample("ms", 0), Ref: sample("ms", 0),
		RefName: "a minimal verifying relay"})
	if h.dist != "" {
		r.dist = distRow(s, cs, "throughput", "MB/s", 0, true)
	}
	return r
}

// 11. Cold fills through a paced upstream: the upstream's bodies leave at
// a link's speed, and Berth, the direct pull and Distribution all go
// through that same pacing; rate 0 is the unpaced loopback.
func (h *harness) coldPaced(ctx context.Context, s *Section) error {
	// Bounded on its own, like scenario 10: it runs after the budget of 1–8.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if h.dist == "" {
		if d, err := findDist(ctx, h.cfg.Dist); err == nil {
			h.dist = d
		} else {
			s.note("Distribution column left out: %v", err)
		}
	}
	s.Intro = fmt.Sprintf("A fresh Berth is asked for a %s blob it does not have, from an upstream whose response bodies "+
		"are paced at a link's speed (125 MB/s is a 1 Gbit/s link), against the client pulling the same blob directly "+
		"through the same pacing and against Distribution's proxy through it; and once unpaced on loopback, against the "+
		"lower of the direct pull and one core's sha256 rate (measured in the same run). %d run(s) per pacing, Berth, "+
		"direct and Distribution alternating, each Berth and Distribution fresh; the client verifies the digest as it "+
		"reads in both Berth's and the direct pulls, as a real client does. Server CPU per GB is the Berth process's "+
		"user+system time (/proc/<pid>/stat) over the bytes, against what sha256 alone costs a thread (getrusage) in the "+
		"same run; the upstream's and the client's CPU per GB are measured the same way, to say how many cores the three "+
		"need between them. Targets: throughput ≥ 0.97× direct through the pacing (≥ 0.9× of min(direct, sha256) unpaced), time "+
		"to first byte within +5 ms, the wait for the last byte ≤ 10 ms, CPU ≤ 1.5× sha256's.", sizeLabel(h.cold.Size), h.cfg.PacedReps)
	s.Bound = "The link while it is slower than Berth's CPU per byte: Berth passes each byte on as it arrives, so the " +
		"client waits only for the link; unpaced, or with a link faster than the fill, CPU per byte (receive, sha256, " +
		"write the blob's file, send) on the cores the client and the upstream share. The wait for the last byte is the " +
		"end of the hash and the digest check; the fsync, rename and index write follow the release."
	s.Growth = "Throughput follows the pacing up to the fill's CPU-bound rate (scenario 3) and stays there for faster " +
		"links. TTFB and the wait for the last byte are flat in the blob's size and the pacing: the client never waits for " +
		"the disk, and the file is made durable in 8 MiB steps as it grows, so the commit after it is short too. CPU per " +
		"GB is flat in the blob's size."
	recvGB, relayGB := relayFloor(h.tmp)
	shaGB := shaCPUPerGB()
	s.note("The floor of a verifying fill on this machine, measured on one thread in this run: receiving 1 GB over "+
		"loopback TCP costs %s ms of CPU (%.2f× sha256's %s ms); a minimal relay that receives, hashes, writes a file "+
		"and sends the bytes on costs %s ms per GB (%.2f× sha256's).", fmtNum(recvGB, 0), recvGB/max(1, shaGB),
		fmtNum(shaGB, 0), fmtNum(relayGB, 0), relayGB/max(1, shaGB))
	ref := h.ref
	defer func() { h.ref = ref }()
	for _, rate := range h.cfg.PacedRates {
		rows := h.pacedRowsFor(s, rate)
		rows.recvGB, rows.relayGB = recvGB, relayGB
		if rate > 0 {
			paced, err := startRefServer(ctx, filepath.Dir(h.blobDir), paceEnv+"="+strconv.FormatFloat(rate, 'f', 0, 64))
			if err != nil {
				return err
			}
			h.ref = paced
			err = h.pacedRuns(ctx, &rows, rate)
			h.ref = ref
			paced.Stop()
			if err != nil {
				return err
			}
		} else if err := h.pacedRuns(ctx, &rows, 0); err != nil {
			return err
		}
		h.pacedWhy(&rows, rate)
	}
	return nil
}

// pacedRuns measures one pacing: direct, Berth and Distribution in turn.
func (h *harness) pacedRuns(ctx context.Context, rows *pacedRows, rate float64) error {
	b := h.cold
	buf := make([]byte, readBuf)
	if err := h.warmClient(ctx, h.direct, h.ref.Upstream); err != nil {
		return err
	}
	for rep := 0; rep < h.cfg.PacedReps; rep++ {
		up0, cl0 := cpuTime(h.ref.Pid()), selfCPU()
		r, err := h.get(ctx, h.direct, h.blobURL(h.ref.Upstream, b), b.Size, buf, true)
		if err == nil && r.Digest != b.Digest {
			err = fmt.Errorf("direct pull of %s: the body is %s", b.Digest, r.Digest)
		}
		if err != nil {
			return err
		}
		rows.upDirectGB.Add(cpuPerGB(cpuTime(h.ref.Pid())-up0, r.Bytes))
		rows.clientDirectGB.Add(cpuPerGB(selfCPU()-cl0, r.Bytes))
		direct := r.MBps()
		rows.ttfb.Ref.Add(ms(r.TTFB))
		rows.tail.Ref.Add(ms(r.Tail))
		shaGB := shaCPUPerGB()
		rows.cpu.Ref.Add(shaGB)
		if rate == 0 {
			rows.thr.Ref.Add(min(direct, 1e3/shaGB*1e3)) // MB/s of one core hashing
		} else {
			rows.thr.Ref.Add(direct)
		}
		bp, c, err := h.coldBerth(ctx, 4)
		if err != nil {
			return err
		}
		c0, up0, cl0 := cpuTime(bp.Pid()), cpuTime(h.ref.Pid()), selfCPU()
		r, err = h.get(ctx, c, h.blobURL(bp.URL, b), b.Size, buf, true)
		cpu := cpuTime(bp.Pid()) - c0
		rows.upGB.Add(cpuPerGB(cpuTime(h.ref.Pid())-up0, r.Bytes))
		rows.clientGB.Add(cpuPerGB(selfCPU()-cl0, r.Bytes))
		bp.Stop()
		closeIdle(c)
		if err == nil && r.Digest != b.Digest {
			err = fmt.Errorf("cold fill of %s through Berth: the body is %s", b.Digest, r.Digest)
		}
		if err != nil {
			return err
		}
		rows.thr.Berth.Add(r.MBps())
		rows.ttfb.Berth.Add(ms(r.TTFB))
		rows.tail.Berth.Add(ms(r.Tail))
		rows.cpu.Berth.Add(cpuPerGB(cpu, r.Bytes))
		rows.floor.Berth.Add(cpuPerGB(cpu, r.Bytes))
		rows.floor.Ref.Add(rows.relayGB)
		if rows.dist != nil {
			dr, err := h.coldStorm(ctx, true, 1, b)
			if err != nil {
				return err
			}
			rows.dist.Ref.Add(dr.agg)
			rows.dist.Berth.Add(r.MBps())
		}
		h.logf("  paced %s MB/s: berth %.0f MB/s ttfb %.2f ms tail %.2f ms cpu %.0f ms/GB; direct %.0f MB/s; sha256 %.0f ms/GB",
			fmtNum(rate/1e6, 0), r.MBps(), ms(r.TTFB), ms(r.Tail), cpuPerGB(cpu, r.Bytes), direct, shaGB)
	}
	return nil
}

// pacedWhy says what bounds the pacing's figures, for the rows that miss.
func (h *harness) pacedWhy(rows *pacedRows, rate float64) {
	bound := "the link: the upstream's pacing, which Berth passes on as it arrives"
	switch {
	case rate == 0:
		bound = "CPU: on loopback the bytes cost only CPU, and Berth's fill pays sha256, the file write and the send on " +
			"the same cores as the client and the upstream"
	case rows.thr.Berth.Median() < 0.97*rate/1e6:
		bound = "CPU: the link brings the bytes faster than Berth's fill pays sha256, the file write and the send for " +
			"them on the same cores as the client and the upstream"
	}
	rows.thr.Why = fmt.Sprintf("What bounds it: %s. Berth's CPU per GB was %s ms against sha256's %s ms (%.2f×).", bound,
		fmtNum(rows.cpu.Berth.Median(), 0), fmtNum(rows.cpu.Ref.Median(), 0), rows.cpu.Berth.Median()/rows.cpu.Ref.Median())
	// Cores a fill needs to keep up with the link (unpaced: the reference
	// rate), against the machine's.
	at := rate
	if at == 0 {
		at = rows.thr.Ref.Median() * 1e6
	}
	rows.thr.Why += " " + coresToKeepUp(rows, at)
	rows.tail.Why = "The last byte is released once the digest verified; the file's fsync, rename and index write " +
		"follow it. What remains is the hash's final block and the wakeup of the reader."
	rows.cpu.Why = fmt.Sprintf("Per byte, a fill receives from the upstream socket, hashes, writes the page cache and "+
		"sends to the client; sha256 is one of these four, so the other three must stay under half of it. On this "+
		"machine receiving alone costs %s ms per GB, %.2f× sha256's, and a minimal relay that does the four and nothing "+
		"else costs %s ms (%.2f×): no fill that receives its bytes over TCP meets ≤ 1.5× here. Berth is at %.2f× of "+
		"that relay.", fmtNum(rows.recvGB, 0), rows.recvGB/rows.cpu.Ref.Median(), fmtNum(rows.relayGB, 0),
		rows.relayGB/rows.cpu.Ref.Median(), rows.cpu.Berth.Median()/max(1, rows.relayGB))
	rows.ttfb.Why = "Berth answers once the upstream's headers arrived (its temporary file is created meanwhile); the " +
		"first bytes reach the client after they were written and hashed, through the wakeups of the goroutines along " +
		"the way on cores the client and the upstream share."
	if rows.dist != nil {
		rows.dist.Why = "Distribution's client gets every byte before its copy is verified or committed; Berth's gets the " +
			"last byte once it verified."
	}
}

// coresToKeepUp says, from the CPU per GB each process spent in the runs,
// how many cores Berth, the upstream and the client take between them to
// keep up with at bytes per second, against the machine's cores, the
// direct pull's and what the minimal verifying relay would take in
// Berth's place.
func coresToKeepUp(rows *pacedRows, at float64) string {
	cores := func(perGB float64) float64 { return perGB / 1e3 * at / 1e9 }
	berth, up, client := cores(rows.cpu.Berth.Median()), cores(rows.upGB.Median()), cores(rows.clientGB.Median())
	relay := cores(rows.relayGB) + up + client
	direct := cores(rows.upDirectGB.Median()) + cores(rows.clientDirectGB.Median())
	s := fmt.Sprintf("Keeping up with %s MB/s takes Berth %.2f cores, the upstream %.2f and the client %.2f (it "+
		"verifies the digest as it reads, as in the direct pull): %.2f of this machine's %d cores, which the three "+
		"share. The direct pull takes %.2f; with the minimal verifying relay in Berth's place it would take %.2f.",
		fmtNum(at/1e6, 0), berth, up, client, berth+up+client, runtime.NumCPU(), direct, relay)
	if relay > float64(runtime.NumCPU()) {
		s += " No fill that receives, hashes, writes and sends each byte keeps up with this link on these cores while " +
			"the client and the upstream run on them too; on separate machines, as at a site, Berth alone needs " +
			fmt.Sprintf("%.2f cores.", berth)
	} else {
		s += " What Berth spends beyond the relay is what keeps it from keeping up here."
	}
	return s
}
