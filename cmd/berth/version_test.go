package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

func TestVersionPrintsEveryField(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"berth ", "\n  revision: ", "\n  built:    ", "\n  go:       " + runtime.Version()} {
		if !strings.Contains(got, want) {
			t.Errorf("berth version lacks %q:\n%s", want, got)
		}
	}
}
