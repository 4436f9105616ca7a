package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/config"
)

// logLines logs a warning and an error through a logger built for format
// and returns what it wrote.
func logLines(t *testing.T, format string) string {
	t.Helper()
	zc, err := loggerConfig(config.Log{Level: "info", Format: format})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "log")
	zc.OutputPaths, zc.ErrorOutputPaths = []string{out}, []string{out}
	log, err := zc.Build()
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("upstream unavailable")
	log.Error("disk full")
	_ = log.Sync()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConsoleLogHasStackTracesOnlyOnErrors(t *testing.T) {
	got := logLines(t, "console")
	warn, errPart, ok := strings.Cut(got, "disk full")
	if !ok {
		t.Fatalf("no error line in:\n%s", got)
	}
	if strings.Contains(warn, "goroutine") || strings.Contains(warn, ".go:") && strings.Count(warn, "\n") > 1 {
		t.Errorf("the warning carries a stack trace:\n%s", warn)
	}
	if strings.Count(errPart, "\n") < 2 {
		t.Errorf("the error has no stack trace:\n%s", errPart)
	}
}

func TestJSONLogTimestampsAreISO8601(t *testing.T) {
	line, _, _ := strings.Cut(logLines(t, "json"), "\n")
	var l struct{ TS string }
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	if _, err := time.Parse(time.RFC3339Nano, l.TS); err != nil {
		t.Errorf("ts %q is not RFC 3339 / ISO 8601: %v", l.TS, err)
	}
}
