package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	t.Parallel()
	stream := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: skopeo missing\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB","Elapsed":0}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: boom\n"}
{"Action":"fail","Package":"p","Test":"TestC","Elapsed":0}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}
{"Action":"fail","Package":"p","Elapsed":0.1}
not json
{"Action":"pass","Package":"q","Elapsed":1}
`
	var out bytes.Buffer
	s := newSummary(&out)
	for _, l := range strings.Split(strings.TrimSuffix(stream, "\n"), "\n") {
		s.line([]byte(l))
	}
	if s.finish() {
		t.Error("finish reported success with a failed test")
	}
	got := out.String()
	for _, want := range []string{
		"--- SKIP: p TestB: b_test.go:9: skopeo missing\n",
		"    c_test.go:3: boom\n",
		"FAIL\tp\t0.1s\n",
		"not json\n",
		"ok  \tq\t1.000s\n",
		"failed tests:\n  p TestC\n",
		"\n1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "1 passed, 1 failed, 1 skipped\n") {
		t.Errorf("output does not end with the summary:\n%s", got)
	}
}

func TestSplitCommands(t *testing.T) {
	t.Parallel()
	got := splitCommands([]string{"go", "test", "::", "::", "go", "vet"})
	if len(got) != 2 || strings.Join(got[0], " ") != "go test" || strings.Join(got[1], " ") != "go vet" {
		t.Errorf("splitCommands = %q", got)
	}
}
