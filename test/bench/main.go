// Command bench measures Berth against the physical limit of the machine it
// runs on: it starts a file-backed upstream registry and a plain sendfile
// file server (in a child process), builds and starts the real berth
// binary, runs the scenarios of docs/benchmarks.md against Berth and the
// references in the same run, and prints a summary; with -out it rewrites
// that file.
//
//	go run ./test/bench -out docs/benchmarks.md   # make bench, < 14 minutes
//	go run ./test/bench -smoke                    # make bench-smoke, ~10 s
//
// All traffic is on 127.0.0.1. Blob bytes come from a deterministic ChaCha8
// stream written to files; no blob is ever held in memory whole.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sizeReps is a blob size measured reps times.
type sizeReps struct {
	Size int64
	Reps int
}

// Config sizes a run.
type Config struct {
	Mode    string // "full" or "smoke"
	Command string // how the run was started, for the report
	// Budget bounds blob generation and scenarios 1–8; the berth build,
	// the store benchmarks and profile formatting have bounds of their own.
	Budget time.Duration
	// Total, when set, bounds the whole run: the store benchmarks are cut
	// short or skipped to stay within it.
	Total time.Duration

	Single     []sizeReps // 1. warm single stream
	ParStreams int        // 2. warm parallel streams
	ParSize    int64
	ParReps    int
	ColdSize   int64 // 3. cold fill
	ColdReps   int
	StormSize  int64 // 4. concurrent cold pulls
	StormN     []int
	StormReps  int
	ManConns   int // 5. warm manifests
	ManDur     time.Duration
	ManReps    int
	ManMax     int64   // request bound per run
	ImageSizes []int64 // 6. whole image
	ImagePar   int
	ImageReps  int
	MemSize    int64 // 7. memory during a big cold fill
	MemReps    int

	// 8. cluster morning storm: ClusterClients clients, round-robin over
	// fresh clusters of each of ClusterNodes sizes, pull the image of
	// scenario 6 with ClusterPar blob fetches each; ClusterReps rounds of
	// every size, no new round started once ClusterTime would pass.
	ClusterNodes   []int
	ClusterClients int
	ClusterPar     int
	ClusterReps    int
	ClusterTime    time.Duration

	// 10. Distribution as a peer, bounded by DistTime as a whole; the cold
	// cases (fresh servers, big fills) run DistReps times each, the
	// concurrent cold clients once (Distribution sends each to the upstream).
	DistTime time.Duration
	DistReps int

	PacedRates []float64 // 11. cold fills through a paced upstream, bytes/s (0: unpaced)
	PacedReps  int
	// 13. a large store: the shape divided by ScaleDiv, built once
	// into ScaleCache ("" builds it in the run); ScaleWarm GETs by tag to
	// warm each store, then ScaleGets measured.
	ScaleDiv   int
	ScaleCache string
	ScaleWarm  int
	ScaleGets  int

	StoreBench []string // 9. go test arguments
	StoreTime  time.Duration
	StoreEarly bool // run them beside the rest (smoke)
	ProfSecs   int  // CPU profile length when berth has pprof
	ProfMax    int  // profiles taken at most
	// FetchTimeout bounds one request.
	FetchTimeout time.Duration
	// Only, when set, names the scenarios to run.
	Only map[int]bool
	// ProfDir keeps the raw profiles.
	ProfDir string
	// Berth is a prebuilt binary to use instead of building one.
	Berth string
	// Dist is the Distribution registry binary ("" finds it in GOPATH/bin).
	Dist string
}

const (
	kiB = 1 << 10
	miB = 1 << 20
	giB = 1 << 30
)

func fullConfig() Config {
	return Config{
		Mode: "full", Command: "make bench", Budget: 11 * time.Minute, Total: 16*time.Minute + 30*time.Second,
		Single:     []sizeReps{{200 * miB, 15}, {1 * giB, 9}},
		ParStreams: 8, ParSize: 128 * miB, ParReps: 11,
		ColdSize: 200 * miB, ColdReps: 5,
		StormSize: 100 * miB, StormN: []int{20, 100}, StormReps: 3,
		ManConns: 32, ManDur: 10 * time.Second, ManReps: 3, ManMax: 5_000_000,
		ImageSizes: []int64{64 * miB, 48 * miB, 32 * miB, 24 * miB, 16 * miB, 16 * miB, 12 * miB, 8 * miB, 8 * miB, 6 * miB,
			4 * miB, 4 * miB, 3 * miB, 2 * miB, 2 * miB, 1 * miB, 1 * miB, 512 * kiB, 256 * kiB, 64 * kiB},
		ImagePar: 4, ImageReps: 3,
		MemSize: 2 * giB, MemReps: 2,
		ClusterNodes: []int{3, 5, 9}, ClusterClients: 100, ClusterPar: 4, ClusterReps: 2, ClusterTime: 3 * time.Minute,
		DistTime: 4 * time.Minute, DistReps: 5,
		PacedRates: []float64{125e6, 400e6, 1e9, 0}, PacedReps: 3,
		ScaleDiv: 1, ScaleWarm: 10_000, ScaleGets: 40_000,
		StoreBench: []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "./store/"},
		StoreTime:  3 * time.Minute,
		ProfSecs:   4, ProfMax: 3, FetchTimeout: 2 * time.Minute,
	}
}

func smokeConfig() Config {
	sizes := make([]int64, 20)
	for i := range sizes {
		sizes[i] = int64(64-3*i) * kiB
	}
	// The smoke budget only bounds a hang: the scenarios take ~15 s on a
	// quiet machine, but make test runs them beside every other package,
	// and a loaded machine must not fail the harness for being slow.
	return Config{
		Mode: "smoke", Command: "make bench-smoke", Budget: 2 * time.Minute,
		Single:     []sizeReps{{1 * miB, 2}, {4 * miB, 2}},
		ParStreams: 8, ParSize: 256 * kiB, ParReps: 2,
		ColdSize: 2 * miB, ColdReps: 2,
		StormSize: 1 * miB, StormN: []int{20, 100}, StormReps: 1,
		ManConns: 32, ManDur: 150 * time.Millisecond, ManReps: 1, ManMax: 200_000,
		ImageSizes: sizes, ImagePar: 4, ImageReps: 1,
		MemSize: 8 * miB, MemReps: 1,
		ClusterNodes: []int{3}, ClusterClients: 6, ClusterPar: 4, ClusterReps: 1, ClusterTime: 5 * time.Second,
		DistTime: time.Minute, DistReps: 1,
		PacedRates: []float64{125e6, 1e9, 0}, PacedReps: 1,
		ScaleDiv: 1000, ScaleWarm: 500, ScaleGets: 2_000,
		StoreBench: []string{"test", "-vet=off", "-run", "^$", "-bench", "GetManifestHot|GetTag", "-benchtime", "200x", "-benchmem", "./store/"},
		StoreTime:  2 * time.Minute, StoreEarly: true,
		ProfSecs: 1, ProfMax: 1, FetchTimeout: 10 * time.Second,
	}
}

func main() {
	if childMain() {
		return
	}
	smoke := flag.Bool("smoke", false, "every scenario with tiny sizes (~10 s); does not write the report file")
	out := flag.String("out", "", "write the markdown report to this file")
	budget := flag.Duration("budget", 0, "override the time budget of the scenarios")
	only := flag.String("only", "", "run only these scenarios, e.g. 3,5 (the report says the others were not run)")
	profiles := flag.String("profiles", "", "keep the raw pprof profiles in this directory")
	bin := flag.String("berth", "", "use this berth binary instead of building ./cmd/berth")
	dist := flag.String("distribution", "", "the Distribution "+distVersion+" registry binary (default: registry in $(go env GOPATH)/bin, installed by scripts/install-bench-deps)")
	nodes := flag.String("nodes", "", "the cluster sizes of scenario 8, e.g. 3,5,9")
	scaleDiv := flag.Int("scale-div", 0, "scenario 13: divide the large store's shape by this (1: 1M tags; default 1, 1000 with -smoke)")
	scaleCache := flag.String("scale-cache", defaultScaleCache(), "scenario 13: build the large store once into this directory (\"\": in every run)")
	flag.Parse()
	cfg := fullConfig()
	if *smoke {
		cfg = smokeConfig()
	}
	if *nodes != "" {
		cfg.ClusterNodes = nil
		for _, f := range strings.Split(*nodes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 250 {
				fmt.Fprintf(os.Stderr, "bench: -nodes %q: each size must be a number from 1 to 250\n", *nodes)
				os.Exit(2)
			}
			cfg.ClusterNodes = append(cfg.ClusterNodes, n)
		}
	}
	if *scaleDiv > 0 {
		cfg.ScaleDiv = *scaleDiv
	}
	cfg.ScaleCache = *scaleCache
	if *budget > 0 {
		cfg.Budget = *budget
	}
	cfg.ProfDir, cfg.Berth, cfg.Dist = *profiles, *bin, *dist
	if *only != "" {
		cfg.Only = map[int]bool{}
		for _, f := range strings.Split(*only, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: -only %q: %v\n", *only, err)
				os.Exit(2)
			}
			cfg.Only[n] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, os.Stderr)
	if rep != nil {
		fmt.Println()
		rep.text(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if *out != "" {
		if err := writeReport(rep, *out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	}
}

func writeReport(rep *Report, path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	rep.markdown(f)
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// moduleRoot walks up from the working directory to berth's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 20; i++ {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && len(b) > 0 {
			if string(b[:min(len(b), 13)]) == "module berth\n" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod of module berth above the working directory")
}
