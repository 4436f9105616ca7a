// Command testsum runs `go test -json` commands one after the other and
// prints what plain `go test` prints (a line per package, the output of
// every failed test) plus every skipped test with its reason, and ends with
// one line: "N passed, N failed, N skipped". It exits non-zero when a
// command failed or a test failed. `make test` runs the tests through it:
//
//	go run ./internal/cmd/testsum [-json FILE] -- go test -json ./a/... :: go test -json ./b/...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

func main() {
	jsonOut := flag.String("json", "", "also write the raw test2json stream to this file")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testsum [-json FILE] -- CMD ARGS... [:: CMD ARGS...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	cmds := splitCommands(flag.Args())
	if len(cmds) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var raw io.Writer = io.Discard
	if *jsonOut != "" {
		f, err := os.Create(*jsonOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(2)
		}
		defer f.Close()
		raw = f
	}
	s := newSummary(os.Stdout)
	ok := true
	for _, args := range cmds {
		if err := run(args, s, raw); err != nil {
			fmt.Fprintf(os.Stdout, "testsum: %s: %v\n", strings.Join(args, " "), err)
			ok = false
		}
	}
	if !s.finish() || !ok {
		os.Exit(1)
	}
}

// splitCommands splits args at "::" into commands, dropping empty ones.
func splitCommands(args []string) [][]string {
	var cmds [][]string
	var cur []string
	for _, a := range args {
		if a == "::" {
			if len(cur) > 0 {
				cmds = append(cmds, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, a)
	}
	if len(cur) > 0 {
		cmds = append(cmds, cur)
	}
	return cmds
}

// run starts one command, feeds its stdout to s line by line (and to raw),
// passes its stderr through, and returns its exit error.
func run(args []string, s *summary, raw io.Writer) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = raw.Write(append(line, '\n'))
		s.line(line)
	}
	scanErr := sc.Err()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && s.sawFailure() {
			return nil // the failed tests are reported already
		}
		return err
	}
	return scanErr
}

// event is one test2json record.
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

type summary struct {
	w                       io.Writer
	buf                     map[string][]string // output per package/test key
	passed, failed, skipped int
	skips, fails            []string
	pkgFailed               bool
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, buf: map[string][]string{}}
}

func (s *summary) sawFailure() bool { return s.failed > 0 || s.pkgFailed }

// line handles one line of a go test -json stream; lines that are not JSON
// events are passed through.
func (s *summary) line(b []byte) {
	var e event
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &e) != nil || e.Action == "" {
		fmt.Fprintf(s.w, "%s\n", b)
		return
	}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.w, e.Output)
	case "build-fail":
		s.pkgFailed = true
	case "output":
		k := key(e.Package, e.Test)
		s.buf[k] = append(s.buf[k], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.packageDone(e)
		} else {
			s.testDone(e)
		}
	}
}

func key(pkg, test string) string { return pkg + "\x00" + test }

func (s *summary) testDone(e event) {
	k := key(e.Package, e.Test)
	out := s.buf[k]
	delete(s.buf, k)
	name := e.Package + " " + e.Test
	switch e.Action {
	case "pass":
		s.passed++
	case "fail":
		s.failed++
		s.fails = append(s.fails, name)
		for _, l := range out {
			fmt.Fprint(s.w, l)
		}
	case "skip":
		s.skipped++
		reason := skipReason(out)
		s.skips = append(s.skips, name+reason)
		fmt.Fprintf(s.w, "--- SKIP: %s%s\n", name, reason)
	}
}

// skipReason is the log of a skipped test (the t.Skip message), joined into
// one line, or "".
func skipReason(out []string) string {
	var parts []string
	for _, l := range out {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, " ")
}

func (s *summary) packageDone(e event) {
	k := key(e.Package, "")
	out := s.buf[k]
	delete(s.buf, k)
	switch e.Action {
	case "pass":
		fmt.Fprintf(s.w, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
	case "skip":
		fmt.Fprintf(s.w, "?   \t%s\t[no test files]\n", e.Package)
	case "fail":
		s.pkgFailed = true
		for _, l := range out {
			fmt.Fprint(s.w, l)
		}
		if len(out) == 0 || !strings.HasPrefix(out[len(out)-1], "FAIL") {
			fmt.Fprintf(s.w, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
	}
}

// finish prints the skipped and failed tests and the closing line, and
// reports whether everything passed.
func (s *summary) finish() bool {
	if len(s.skips) > 0 {
		fmt.Fprintf(s.w, "\nskipped tests:\n")
		for _, n := range s.skips {
			fmt.Fprintf(s.w, "  %s\n", n)
		}
	}
	if len(s.fails) > 0 {
		fmt.Fprintf(s.w, "\nfailed tests:\n")
		for _, n := range s.fails {
			fmt.Fprintf(s.w, "  %s\n", n)
		}
	}
	if s.pkgFailed && s.failed == 0 {
		fmt.Fprintf(s.w, "\na package failed outside its tests (build error, panic or timeout; see above)\n")
	}
	fmt.Fprintf(s.w, "\n%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return s.failed == 0 && !s.pkgFailed
}
