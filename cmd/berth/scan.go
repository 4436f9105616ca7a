package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"berth/admin"
)

// scanVerbs are the verbs of image scanning.
func scanVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"put-image-scanning-configuration": {
			summary: "scan every push to a local repository (--repository-name R --scan-on-push true)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				on := fs.String("scan-on-push", "", "true: scan each image pushed; false: only when started by hand (or by the node's scanning.scanOnPush)")
				return func() (any, error) {
					v, err := strconv.ParseBool(*on)
					if err != nil {
						err = fmt.Errorf("--scan-on-push: %q is not true or false", *on)
					}
					return admin.PutImageScanningConfigurationRequest{RepositoryName: *name,
						ImageScanningConfiguration: admin.ImageScanningConfiguration{ScanOnPush: v}}, errors.Join(requireFlag("repository-name", *name), err)
				}
			},
			table: func(w io.Writer, body []byte) error {
				r, err := decodeInto[admin.PutImageScanningConfigurationResponse](body)
				if err != nil {
					return err
				}
				return writeTable(w, "REPOSITORY\tSCAN ON PUSH", []string{cells(r.RepositoryName, r.ImageScanningConfiguration.ScanOnPush)})
			},
		},
		"start-image-scan": {
			summary: "scan an image now (--repository-name R --image-id imageTag=v1)",
			flags: imageIDFlags(func(name string, id admin.ImageID, _ int, _ string) any {
				return admin.StartImageScanRequest{RepositoryName: name, ImageID: id}
			}),
			table: func(w io.Writer, body []byte) error {
				r, err := decodeInto[admin.StartImageScanResponse](body)
				if err != nil {
					return err
				}
				return writeTable(w, "REPOSITORY\tDIGEST\tSTATUS", []string{cells(r.RepositoryName, r.ImageID.ImageDigest, r.ImageScanStatus.Status)})
			},
		},
		"describe-image-scan-findings": {
			summary: "show an image's vulnerabilities (--repository-name R --image-id imageTag=v1)",
			flags: imageIDFlags(func(name string, id admin.ImageID, max int, next string) any {
				return admin.DescribeImageScanFindingsRequest{RepositoryName: name, ImageID: id, MaxResults: max, NextToken: next}
			}),
			table: tableFindings,
		},
	}
}

// imageIDFlags are the flags of a verb on one image; build makes the
// request (maxResults and nextToken for the verbs that page).
func imageIDFlags(build func(name string, id admin.ImageID, max int, next string) any) func(fs *flag.FlagSet) func() (any, error) {
	return func(fs *flag.FlagSet) func() (any, error) {
		name := repoFlag(fs)
		id := fs.String("image-id", "", "the image: imageTag=v1 or imageDigest=sha256:...")
		max := fs.Int("max-results", 0, "findings per page (default 100)")
		next := fs.String("next-token", "", "the page after the one that gave this token")
		return func() (any, error) {
			one, err := oneImageID(*id)
			if err != nil {
				return nil, err
			}
			return build(*name, one, *max, *next), requireFlag("repository-name", *name)
		}
	}
}

func tableFindings(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribeImageScanFindingsResponse](body)
	if err != nil {
		return err
	}
	if err := writeTable(w, "REPOSITORY\tDIGEST\tSTATUS\tDESCRIPTION", []string{
		cells(r.RepositoryName, r.ImageID.ImageDigest, r.ImageScanStatus.Status, r.ImageScanStatus.Description),
	}); err != nil || r.ImageScanFindings == nil {
		return err
	}
	f := r.ImageScanFindings
	fmt.Fprintf(w, "\nscanned %s against the database of %s; SBOM %s\n\n", fmtTime(f.ImageScanCompletedAt), fmtTime(f.VulnerabilitySourceUpdatedAt), r.SBOMDigest)
	rows := make([]string, 0, len(f.Findings))
	for _, x := range f.Findings {
		rows = append(rows, cells(x.Severity, x.Name, x.Attr("package_name"), x.Attr("package_version"), x.Attr("fixed_version"), x.URI))
	}
	if err := writeTable(w, "SEVERITY\tID\tPACKAGE\tINSTALLED\tFIXED IN\tLINK", rows); err != nil {
		return err
	}
	if r.NextToken != "" {
		fmt.Fprintf(w, "\nmore: --next-token %s\n", r.NextToken)
	}
	return nil
}
