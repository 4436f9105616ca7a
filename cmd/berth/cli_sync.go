package main

import (
	"errors"
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

func replicationStatusFlags(fs *flag.FlagSet) func() (any, error) {
	name := repoFlag(fs)
	id := fs.String("image-id", "", "the image: imageTag=v1 or imageDigest=sha256:...")
	return func() (any, error) {
		one, err := oneImageID(*id)
		if err != nil {
			return nil, err
		}
		return admin.DescribeImageReplicationStatusRequest{RepositoryName: *name, ImageID: one},
			requireFlag("repository-name", *name)
	}
}

// oneImageID reads --image-id naming one image (imageTag=v1 or
// imageDigest=sha256:...).
func oneImageID(id string) (admin.ImageID, error) {
	ids, err := parseImageIDs([]string{id})
	if err == nil && len(ids) != 1 {
		err = errors.New("--image-id: give one image")
	}
	if err != nil {
		return admin.ImageID{}, errors.Join(err, requireFlag("image-id", id))
	}
	return ids[0], nil
}

func tableReplication(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribeImageReplicationStatusResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, s := range r.ReplicationStatus {
		rows = append(rows, cells(s.Destination, s.Status, s.UpdatedAt.Format(time.RFC3339), s.FailureReason))
	}
	return writeTable(w, "DESTINATION\tSTATUS\tUPDATED\tFAILURE", rows)
}
