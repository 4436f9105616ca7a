package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"
)

func readAllLimit(r io.Reader, n int64) ([]byte, error) { return io.ReadAll(io.LimitReader(r, n)) }

// download saves url to path.
func download(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profile runs work against the warm berth while taking a CPU profile of
// it, and heap profiles before and after; the top entries go to the
// report. It does nothing when berth has no pprof endpoint.
func (h *harness) profile(ctx context.Context, id, title string, focus []focus, done func(shares map[string]float64), work func(context.Context)) {
	if !h.admin || h.warm.AdminURL == "" || ctx.Err() != nil || len(h.captures) >= h.cfg.ProfMax {
		return
	}
	dir := filepath.Join(h.tmp, "profiles")
	os.MkdirAll(dir, 0o755)
	secs := h.cfg.ProfSecs
	pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	heap0, heap1, cpu := filepath.Join(dir, id+"-heap0.pb.gz"), filepath.Join(dir, id+"-heap1.pb.gz"), filepath.Join(dir, id+"-cpu.pb.gz")
	fail := func(err error) {
		h.profiles = append(h.profiles, fmt.Sprintf("### %s\n\nProfile not captured: %v\n", title, err))
	}
	if err := download(pctx, h.warm.AdminURL+"/debug/pprof/heap", heap0); err != nil {
		fail(err)
		return
	}
	wctx, stopWork := context.WithCancel(pctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); work(wctx) }()
	err := download(pctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", h.warm.AdminURL, secs), cpu)
	stopWork()
	wg.Wait()
	if err != nil {
		fail(err)
		return
	}
	if err := download(pctx, h.warm.AdminURL+"/debug/pprof/heap", heap1); err != nil {
		fail(err)
		return
	}
	h.captures = append(h.captures, capture{title: title, secs: secs, cpu: cpu, heap0: heap0, heap1: heap1, focus: focus, done: done})
}

// focus is a function whose cumulative share of the CPU samples is worth
// naming, with the words it is named by.
type focus struct{ fn, label string }

// capture is a profile taken during a scenario, formatted after all of them
// (go tool pprof may have to be built first, which the scenarios' budget
// must not pay for).
type capture struct {
	title             string
	secs              int
	cpu, heap0, heap1 string
	focus             []focus
	done              func(shares map[string]float64) // told the shares found, by fn
}

// formatProfiles turns the captures into the report's profile section.
func (h *harness) formatProfiles(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if d := h.cfg.ProfDir; d != "" && len(h.captures) > 0 {
		if err := os.MkdirAll(d, 0o755); err == nil {
			for _, c := range h.captures {
				for _, f := range []string{c.cpu, c.heap0, c.heap1} {
					if b, err := os.ReadFile(f); err == nil {
						os.WriteFile(filepath.Join(d, filepath.Base(f)), b, 0o644)
					}
				}
			}
			h.logf("raw profiles kept in %s", d)
		}
	}
	for _, c := range h.captures {
		cpuTop, err := pprofTop(ctx, h.root, c.cpu)
		if err != nil {
			h.profiles = append(h.profiles, fmt.Sprintf("### %s\n\nProfile not formatted: %v\n", c.title, err))
			continue
		}
		allocTop, err := pprofTop(ctx, h.root, c.heap1, "-sample_index=alloc_space", "-ignore=net/http/pprof", "-base", c.heap0)
		if err != nil {
			h.profiles = append(h.profiles, fmt.Sprintf("### %s\n\nProfile not formatted: %v\n", c.title, err))
			continue
		}
		if strings.Contains(allocTop, "accounting for 0, 0%") {
			allocTop = "(none sampled: the heap profile samples about one allocation per 512 KiB allocated)"
		}
		shares := cumShares(ctx, h.root, c.cpu)
		var named []string
		found := map[string]float64{}
		for _, f := range c.focus {
			if v, ok := shares[f.fn]; ok {
				found[f.fn] = v
				named = append(named, fmt.Sprintf("%s (`%s`) %.0f%%", f.label, f.fn, v))
			}
		}
		if c.done != nil {
			if v, ok := shares[coresKey]; ok && len(found) > 0 {
				found[coresKey] = v
			}
			c.done(found)
		}
		sum := ""
		if len(named) > 0 {
			sum = "Share of Berth's CPU samples spent in and under: " + strings.Join(named, "; ") + ".\n\n"
		}
		h.profiles = append(h.profiles, fmt.Sprintf("### %s\n\n%sCPU, %d s, top functions by own time:\n\n```\n%s\n```\n\n"+
			"Allocations during the same window (alloc_space, sampled; the profiler's own left out), top functions:\n\n```\n%s\n```\n", c.title, sum, c.secs, cpuTop, allocTop))
	}
}

// pprofTop runs go tool pprof -top and keeps the header and the first rows.
func pprofTop(ctx context.Context, root, file string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof", "-top", "-nodecount=12"}, args...), file)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %v: %s", err, out)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") ||
			strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Dropped") || strings.TrimSpace(l) == "" ||
			strings.HasPrefix(l, "Active filters:") || strings.HasPrefix(strings.TrimSpace(l), "ignore=") ||
			strings.HasPrefix(l, "Ignore expression matched no samples") {
			continue
		}
		keep = append(keep, strings.TrimRight(l, " "))
	}
	return strings.Join(keep, "\n"), nil
}

var cumLine = regexp.MustCompile(`^\s*\S+\s+\S+%\s+\S+%\s+\S+\s+(\S+)%\s+(.+)$`)

var totalLine = regexp.MustCompile(`^Duration: .*Total samples = \S+ \((\S+)%\)`)

// coresKey holds, in cumShares' map, the cores the process used on average.
const coresKey = "(cores)"

// cumShares maps function names to their cumulative share (percent) of a
// CPU profile's samples.
func cumShares(ctx context.Context, root, file string) map[string]float64 {
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=400", file)
	cmd.Dir = root
	out, err := cmd.Output()
	m := map[string]float64{}
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(out), "\n") {
		// "Duration: 4s, Total samples = 3.67s (91.73%)": cores used.
		if sm := totalLine.FindStringSubmatch(l); sm != nil {
			var v float64
			if _, err := fmt.Sscan(sm[1], &v); err == nil {
				m[coresKey] = v / 100
			}
		}
		if sm := cumLine.FindStringSubmatch(l); sm != nil {
			var v float64
			if _, err := fmt.Sscan(sm[1], &v); err == nil {
				m[strings.TrimSpace(sm[2])] = v
			}
		}
	}
	return m
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+(.*)$`)

// 9. Store benchmarks.
func (h *harness) storeBench(ctx context.Context, s *Section) error {
	args := h.cfg.StoreBench
	s.Intro = fmt.Sprintf("`go %s`, run by the harness, summarised. These time the store alone, in process, "+
		"without HTTP. The layout benchmarks and their reading are in docs/design.md.", strings.Join(args, " "))
	limit := h.cfg.StoreTime
	if h.cfg.Total > 0 {
		// Leave ~15 s for the profiles and the report.
		left := time.Until(h.start.Add(h.cfg.Total)) - 15*time.Second
		if left < 20*time.Second {
			return fmt.Errorf("not run: the run's %s were used up", h.cfg.Total)
		}
		limit = min(limit, left)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = h.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, lastLines(string(out), 20))
	}
	var rows []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		// Metrics come in "value unit" pairs.
		f := strings.Fields(m[3])
		var nsop, mbs, bop, allocs string
		var other []string
		for i := 0; i+1 < len(f); i += 2 {
			v, unit := f[i], f[i+1]
			switch unit {
			case "ns/op":
				nsop = v
			case "MB/s":
				mbs = v
			case "B/op":
				bop = v
			case "allocs/op":
				allocs = v
			default:
				other = append(other, v+" "+unit)
			}
		}
		name := strings.TrimSuffix(m[1], fmt.Sprintf("-%d", numCPU()))
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s |", name, m[2], nsop, orDash(mbs), bop, allocs,
			orDash(strings.Join(other, ", "))))
	}
	if len(rows) == 0 {
		return fmt.Errorf("no benchmark lines in the output of go %s:\n%s", strings.Join(args, " "), lastLines(string(out), 20))
	}
	s.Extra = "| Benchmark | Iterations | ns/op | MB/s | B/op | allocs/op | Other |\n|---|---|---|---|---|---|---|\n" +
		strings.Join(rows, "\n") + "\n"
	h.logf("  %d store benchmarks", len(rows))
	return nil
}

func numCPU() int { return runtime.GOMAXPROCS(0) }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
