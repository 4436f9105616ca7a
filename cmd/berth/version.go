package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile (-ldflags "-X main.version=... -X
// main.revision=... -X main.buildTime=..."), so `make build` stamps the
// binary even where the go command's VCS stamping is off (-buildvcs=false).
// What is left empty is taken from the build information the go command
// records (module version, vcs.revision, vcs.time).
var (
	version   = "dev"
	revision  = ""
	buildTime = ""
)

// buildInfo is what `berth version` prints.
type buildInfo struct {
	Version, Revision, Time, GoVersion string
	Modified                           bool
}

// readBuildInfo merges the link-time values with debug.ReadBuildInfo.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: revision, Time: buildTime, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Revision == "" {
				b.Revision = s.Value
			}
		case "vcs.time":
			if b.Time == "" {
				b.Time = s.Value
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func printVersion(out io.Writer) {
	b := readBuildInfo()
	unknown := func(s string) string {
		if s == "" {
			return "unknown (built without VCS information; make build records it)"
		}
		return s
	}
	rev := unknown(b.Revision)
	if b.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(out, "berth %s\n  revision: %s\n  built:    %s\n  go:       %s %s/%s\n",
		b.Version, rev, unknown(b.Time), b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
