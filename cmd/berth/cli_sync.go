package main

import (
	"flag"
	"io"
	"strings"
	"time"

	"berth/admin"
)

func syncNowFlags(fs *flag.FlagSet) func() (any, error) {
	rule := fs.String("rule", "", "the sync rule to run (default: every rule)")
	wait := fs.Bool("wait", false, "answer when the runs have ended")
	return func() (any, error) { return admin.SyncNowRequest{Rule: *rule, Wait: *wait}, nil }
}

func tableSync(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.SyncResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, st := range r.Rules {
		last, images, bytes, errs, took := "never", "-", "-", "-", "-"
		if l := st.LastRun; l != nil {
			last, images, bytes = l.Started.Format(time.RFC3339), cells(l.Images), humanBytes(l.Bytes)
			errs = cells(len(l.Errors))
			if len(l.Errors) > 0 {
				errs += ": " + strings.Join(l.Errors, "; ")
			}
			if !l.Finished.IsZero() {
				took = l.Finished.Sub(l.Started).Round(time.Millisecond).String()
			}
		}
		if st.Running {
			last += " (running)"
		}
		next := "-"
		if !st.NextRun.IsZero() {
			next = st.NextRun.UTC().Format(time.RFC3339)
		}
		rows = append(rows, cells(st.Rule, st.Upstream, last, took, images, bytes, next, errs))
	}
	return writeTable(w, "RULE\tUPSTREAM\tLAST RUN\tTOOK\tIMAGES\tBYTES\tNEXT RUN\tERRORS", rows)
}
