package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// defaultHealthURL is the built-in admin listener's /healthz.
const defaultHealthURL = "http://127.0.0.1:5001/healthz"

// healthcheckCmd asks a node's admin listener whether it is up: the
// container image's HEALTHCHECK and the Kubernetes probes run it, since the
// image holds nothing but the berth binary (no curl or wget). It exits 0 on
// a 200 answer and 1 otherwise, saying why.
func healthcheckCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", defaultHealthURL, "URL to GET; /readyz on the admin listener for readiness")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck takes no arguments, got %q; use --url", fs.Args())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: --url %q: %w", *url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %s is not answering (is berth serving, and is admin.listen this address?): %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", *url, resp.Status, body)
	}
	fmt.Fprintf(out, "%s: %s", *url, body)
	return nil
}
