package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"berth/admin"

	"gopkg.in/yaml.v3"
)

// warmCmd is berth warm: fill (and pin) the images a list or Kubernetes
// manifests name, through a running node.
func warmCmd(ctx context.Context, args []string, out io.Writer) error {
	c := newCLI(out)
	fs := flag.NewFlagSet("warm", flag.ContinueOnError)
	call := adminFor(fs, c)
	from := fs.String("from", "", "a list of images as clients pull them through Berth (one a line, # comments), or Kubernetes manifests (multi-document YAML) (required)")
	var platforms listFlag
	fs.Var(&platforms, "platform", "fill only this platform of an index (linux/amd64), several allowed; default every platform")
	pin := fs.Bool("pin", false, "pin the warmed images, so eviction never removes them")
	output := fs.String("o", "table", "output: table or json")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: berth warm --from FILE [--platform linux/amd64 ...] [--pin] [--admin URL] [-o table|json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("warm: give --from FILE and no other arguments")
	}
	b, err := os.ReadFile(*from)
	if err != nil {
		return fmt.Errorf("warm --from: %w", err)
	}
	req := admin.WarmRequest{Platforms: splitNames(platforms), Pin: *pin}
	if isKubernetes(b) {
		req.Images, err = kubernetesImages(b)
	} else {
		req.Refs = listRefs(b)
	}
	if err != nil {
		return fmt.Errorf("warm --from %s: %w", *from, err)
	}
	if len(req.Images)+len(req.Refs) == 0 {
		return fmt.Errorf("warm --from %s: it names no image", *from)
	}
	r, err := warmEach(ctx, call(), req, *output != "json", out)
	if err != nil {
		return err
	}
	if *output == "json" {
		var body []byte
		if body, err = json.Marshal(r); err == nil {
			err = printJSON(out, body)
		}
	} else {
		err = tableWarm(out, r)
	}
	if err == nil && r.Failed > 0 {
		err = fmt.Errorf("warm: %d of %d images failed (see ERROR)", r.Failed, r.Failed+r.Warmed)
	}
	return err
}

// warmEach asks the node to warm one image at a time, so the operator
// sees each finish (a line on out when progress is set) and a long list
// holds no request open for all of its fills.
func warmEach(ctx context.Context, a *adminCall, req admin.WarmRequest, progress bool, out io.Writer) (*admin.WarmResponse, error) {
	var one []admin.WarmRequest
	for _, ref := range req.Refs {
		one = append(one, admin.WarmRequest{Refs: []string{ref}, Platforms: req.Platforms, Pin: req.Pin})
	}
	for _, im := range req.Images {
		one = append(one, admin.WarmRequest{Images: []string{im}, Platforms: req.Platforms, Pin: req.Pin})
	}
	all := &admin.WarmResponse{Images: []admin.WarmImage{}}
	for i, r1 := range one {
		body, err := a.do(ctx, "warm", r1)
		if err != nil {
			return nil, err
		}
		r, err := decodeInto[admin.WarmResponse](body)
		if err != nil {
			return nil, err
		}
		all.Images = append(all.Images, r.Images...)
		all.Warmed += r.Warmed
		all.Failed += r.Failed
		all.Bytes += r.Bytes
		for _, im := range r.Images {
			if !progress {
				continue
			}
			status := "done, " + humanBytes(im.Bytes) + " fetched"
			if im.Error != "" {
				status = "failed: " + im.Error
			}
			fmt.Fprintf(out, "[%d/%d] %s: %s\n", i+1, len(one), im.Image, status)
		}
	}
	return all, nil
}

func tableWarm(w io.Writer, r *admin.WarmResponse) error {
	var rows []string
	for _, i := range r.Images {
		rows = append(rows, cells(i.Image, i.RepositoryName, i.ImageDigest, humanBytes(i.Bytes), i.Pinned, i.Error))
	}
	if err := writeTable(w, "IMAGE\tREPOSITORY\tDIGEST\tFETCHED\tPINNED\tERROR", rows); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d warmed, %d failed, %s fetched from upstreams\n", r.Warmed, r.Failed, humanBytes(r.Bytes))
	return err
}

// isKubernetes tells Kubernetes manifests from a list of references: a
// manifest has a top-level apiVersion: or kind:.
func isKubernetes(b []byte) bool {
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "apiVersion:") || strings.HasPrefix(line, "kind:") {
			return true
		}
	}
	return false
}

// listRefs reads a list of references: one a line, # comments, blank
// lines skipped.
func listRefs(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// containerLists are the pod spec keys whose items carry image:.
var containerLists = []string{"containers", "initContainers", "ephemeralContainers"}

// kubernetesImages collects every image: of the containers, init
// containers and ephemeral containers in multi-document YAML, wherever
// their pod spec sits (Pod, Deployment, StatefulSet, DaemonSet, Job,
// CronJob, List), each once, in order.
func kubernetesImages(b []byte) ([]string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []string
	seen := map[string]bool{}
	for i := 1; ; i++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", i, err)
		}
		for _, img := range podImages(doc) {
			if !seen[img] {
				seen[img] = true
				out = append(out, img)
			}
		}
	}
}

func podImages(node any) []string {
	var out []string
	switch n := node.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(n)) {
			v := n[k]
			if items, ok := v.([]any); ok && slices.Contains(containerLists, k) {
				for _, it := range items {
					if c, ok := it.(map[string]any); ok {
						if img, ok := c["image"].(string); ok && img != "" {
							out = append(out, img)
						}
					}
				}
				continue
			}
			out = append(out, podImages(v)...)
		}
	case []any:
		for _, v := range n {
			out = append(out, podImages(v)...)
		}
	}
	return out
}
