package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"berth/admin"
)

// The admin client: `berth <verb> [flags]` runs one verb of the admin API
// (admin package) on a node and prints its answer, as `aws ecr <verb>`
// does: JSON by default, a table with -o table.

// defaultAdmin is the admin listener's default address.
const defaultAdmin = "http://127.0.0.1:5001"

// runCLI runs an admin verb; any other command is unknown.
func runCLI(ctx context.Context, args []string, out io.Writer) error {
	c := &cli{out: out, errOut: os.Stderr, getenv: os.Getenv, tty: isTerminal(os.Stderr),
		client: &http.Client{}, poll: 250 * time.Millisecond}
	return c.run(ctx, args)
}

// cli is one invocation of the client.
type cli struct {
	out, errOut io.Writer
	getenv      func(string) string
	// tty says errOut is a terminal: progress is redrawn in place there,
	// and printed as plain lines otherwise.
	tty    bool
	client *http.Client
	// poll is how often a preview is asked for while waiting.
	poll time.Duration
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

const cliUsage = `Admin commands (berth <command> -h for its flags), on the node at --admin
(default %s, or $BERTH_ADMIN); -o table prints a table instead of JSON:
`

func (c *cli) usage() {
	fmt.Fprint(c.out, usage)
	fmt.Fprintf(c.out, "\n"+cliUsage, defaultAdmin)
	verbs := cliVerbs()
	names := make([]string, 0, len(verbs))
	for name := range verbs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(c.out, "  %-34s %s\n", name, verbs[name].summary)
	}
}

func (c *cli) run(ctx context.Context, args []string) error {
	v, ok := cliVerbs()[args[0]]
	if !ok {
		c.usage()
		return fmt.Errorf("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	adminURL := fs.String("admin", c.env("BERTH_ADMIN", defaultAdmin), "the node's admin API (env BERTH_ADMIN)")
	var output string
	fs.StringVar(&output, "output", "json", "output format: json or table")
	fs.StringVar(&output, "o", "json", "shorthand for --output")
	build := v.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.errOut, "Usage: berth %s [flags]\n\n%s\n\nFlags:\n", args[0], v.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(expandLists(args[1:], v.lists)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (flags are --name value)", args[0], fs.Arg(0))
	}
	if output != "json" && output != "table" {
		return fmt.Errorf("--output: %q is not json or table", output)
	}
	req, err := build()
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	call := &adminCall{c: c, base: adminBase(*adminURL)}
	var body []byte
	if v.run != nil {
		body, err = v.run(ctx, call, req)
	} else if v.progress != "" {
		body, err = c.withProgress(v.progress, func() ([]byte, error) { return call.do(ctx, args[0], req) })
	} else {
		body, err = call.do(ctx, args[0], req)
	}
	if err != nil {
		return err
	}
	if output == "table" && v.table != nil {
		return v.table(c.out, body)
	}
	return printJSON(c.out, body)
}

// adminBase is the admin API's base URL of --admin: a URL, or host:port
// as admin.listen is written.
func adminBase(u string) string {
	base := strings.TrimRight(u, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return base
}

func (c *cli) env(k, def string) string {
	if v := c.getenv(k); v != "" {
		return v
	}
	return def
}

// printJSON prints an answer indented, as the aws CLI does.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "    "); err != nil {
		return fmt.Errorf("the admin API answered something that is not JSON: %q", body)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// adminCall sends the admin verbs (cliVerbs) to one node.
type adminCall struct {
	c    *cli
	base string
}

// do posts req to the verb and returns the answer's body, or the API's
// error.
func (k *adminCall) do(ctx context.Context, verb string, req any) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := k.send(ctx, verb, "application/json", bytes.NewReader(b), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", verb, err)
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	return nil, apiError(verb, resp.Status, body)
}

// send posts body to the verb, with the admin's credentials from the
// environment.
func (k *adminCall) send(ctx context.Context, verb, contentType string, body io.Reader, hdr http.Header) (*http.Response, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, k.base+admin.Prefix+verb, body)
	if err != nil {
		return nil, fmt.Errorf("--admin %q: %w", k.base, err)
	}
	for name, v := range hdr {
		hr.Header[name] = v
	}
	hr.Header.Set("Content-Type", contentType)
	hr.Header.Set("User-Agent", "berth/"+version)
	if user := k.c.getenv("BERTH_USERNAME"); user != "" {
		// With auth on, the admin API takes an admin's password or token.
		hr.SetBasicAuth(user, k.c.getenv("BERTH_PASSWORD"))
	}
	resp, err := k.c.client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the admin API at %s (set --admin or BERTH_ADMIN): %w", k.base, err)
	}
	return resp, nil
}

// apiError formats an error answer like the aws CLI: "An error occurred
// (Code) when calling verb: message", one line per entry.
func apiError(verb, status string, body []byte) error {
	var eb struct {
		Errors []admin.ErrorEntry `json:"errors"`
	}
	if json.Unmarshal(body, &eb) != nil || len(eb.Errors) == 0 {
		return fmt.Errorf("%s: the admin API answered %s: %s", verb, status, strings.TrimSpace(string(body)))
	}
	var lines []string
	for _, e := range eb.Errors {
		lines = append(lines, fmt.Sprintf("An error occurred (%s) when calling %s: %s", e.Code, verb, e.Message))
	}
	return errors.New(strings.Join(lines, "\n"))
}

// progress shows how a long operation goes on errOut: redrawn in place on
// a terminal, as plain lines otherwise (the first at once, then at most
// every plainEvery).
type cliProgress struct {
	c         *cli
	last      string
	lastPlain time.Time
	drawn     bool
}

const plainEvery = 10 * time.Second

func (p *cliProgress) update(msg string) {
	if msg == p.last {
		return
	}
	p.last = msg
	if p.c.tty {
		fmt.Fprintf(p.c.errOut, "\r\033[K%s", msg)
		p.drawn = true
		return
	}
	if time.Since(p.lastPlain) >= plainEvery {
		fmt.Fprintln(p.c.errOut, msg)
		p.lastPlain = time.Now()
	}
}

func (p *cliProgress) done(msg string) {
	if p.c.tty {
		if p.drawn {
			fmt.Fprint(p.c.errOut, "\r\033[K")
		}
		fmt.Fprintln(p.c.errOut, msg)
		return
	}
	fmt.Fprintln(p.c.errOut, msg)
}

// withProgress runs f, showing the time it takes.
func (c *cli) withProgress(label string, f func() ([]byte, error)) ([]byte, error) {
	p := &cliProgress{c: c}
	start := time.Now()
	p.update(label + "...")
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := f()
		ch <- result{b, err}
	}()
	spin := time.NewTicker(200 * time.Millisecond)
	defer spin.Stop()
	frames := `|/-\`
	for i := 0; ; i++ {
		select {
		case r := <-ch:
			took := time.Since(start).Round(time.Millisecond)
			if r.err != nil {
				p.done(fmt.Sprintf("%s: failed after %s", label, took))
			} else {
				p.done(fmt.Sprintf("%s: done in %s", label, took))
			}
			return r.body, r.err
		case <-spin.C:
			p.update(fmt.Sprintf("%s... %c %s", label, frames[i%len(frames)], time.Since(start).Round(time.Second)))
		}
	}
}
