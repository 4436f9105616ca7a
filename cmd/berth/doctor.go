package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"berth/config"
	"berth/node"
)

// finding is one result of berth doctor.
type finding struct {
	Check   string `json:"check"`
	Status  string `json:"status"` // ok, warn, fail or skip
	Message string `json:"message"`
	Fix     *fix   `json:"fix,omitempty"`
}

// fix is what to do about a finding: a file to write (its whole content,
// or the part to add) and a command to run.
type fix struct {
	File    string `json:"file,omitempty"`
	Content string `json:"content,omitempty"`
	Command string `json:"command,omitempty"`
}

// doctor checks this host's clients and the node.
type doctor struct {
	ctx    context.Context
	cfg    config.Config
	mirror string // the registry's URL as clients on this host reach it
	admin  string
	client *http.Client
	now    func() time.Time
	// The client configuration files read.
	daemonJSON, containerdConfig, certsD, registriesConf string
	out                                                  []finding
}

func (d *doctor) add(check, status, msg string, f *fix) {
	d.out = append(d.out, finding{Check: check, Status: status, Message: msg, Fix: f})
}

// doctorCmd is berth doctor.
func doctorCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	path := fs.String("config", "", "the node's config file (default: the built-in defaults)")
	mirror := fs.String("mirror", "", "the registry's URL as clients on this host reach it (default: from the config's listen)")
	adminURL := fs.String("admin", "", "the admin listener's URL (default: from the config's admin.listen)")
	output := fs.String("o", "table", "output: table or json")
	d := &doctor{ctx: ctx, client: &http.Client{Timeout: 5 * time.Second}, now: time.Now}
	fs.StringVar(&d.daemonJSON, "docker-daemon-json", "/etc/docker/daemon.json", "Docker's daemon.json")
	fs.StringVar(&d.containerdConfig, "containerd-config", "/etc/containerd/config.toml", "containerd's config.toml")
	fs.StringVar(&d.certsD, "certs-d", "/etc/containerd/certs.d", "containerd's hosts directory, when its config names none")
	fs.StringVar(&d.registriesConf, "registries-conf", "/etc/containers/registries.conf", "podman's and CRI-O's registries.conf")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := node.LoadConfig(*path)
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	d.cfg = cfg
	d.mirror, d.admin = *mirror, *adminURL
	if d.mirror == "" {
		d.mirror = "http://" + loopbackAddr(cfg.Listen)
	}
	if d.admin == "" && cfg.Admin.Listen != "" {
		d.admin = "http://" + loopbackAddr(cfg.Admin.Listen)
	}
	d.mirror = strings.TrimRight(d.mirror, "/")
	d.run()
	if err := d.print(out, *output); err != nil {
		return err
	}
	for _, f := range d.out {
		if f.Status == "fail" {
			return errors.New("doctor: something is wrong (see the findings above and their fixes)")
		}
	}
	return nil
}

// run does every check.
func (d *doctor) run() {
	d.checkBerth()
	d.checkDocker()
	d.checkContainerd()
	d.checkRegistriesConf()
	d.checkUpstreams()
	d.checkClusterClocks()
	d.checkDisk()
	d.checkPermissions()
}

func (d *doctor) print(w io.Writer, output string) error {
	switch output {
	case "json":
		b, err := json.MarshalIndent(struct {
			Findings []finding `json:"findings"`
		}{d.out}, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tCHECK\tFINDING")
		for _, f := range d.out {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(f.Status), f.Check, f.Message)
		}
		tw.Flush()
		for _, f := range d.out {
			if f.Fix == nil {
				continue
			}
			fmt.Fprintf(w, "\nfix for %s:\n", f.Check)
			if f.Fix.File != "" {
				fmt.Fprintf(w, "  write %s:\n%s\n", f.Fix.File, indent(f.Fix.Content, "    "))
			}
			if f.Fix.Command != "" {
				fmt.Fprintf(w, "  run: %s\n", f.Fix.Command)
			}
		}
		return nil
	}
	return fmt.Errorf("doctor: -o %q is not table or json", output)
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return by + strings.Join(lines, "\n"+by)
}

// loopbackAddr is how a client on this host reaches a listen address: an
// empty or unspecified host is 127.0.0.1.
func loopbackAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// mirrorHost is the mirror's host:port.
func (d *doctor) mirrorHost() string {
	u, err := url.Parse(d.mirror)
	if err != nil {
		return d.mirror
	}
	return u.Host
}

// insecure says clients must be told the mirror speaks plain HTTP: an
// http URL on a host that is not loopback (Docker trusts loopback).
func (d *doctor) insecure() bool {
	u, err := url.Parse(d.mirror)
	if err != nil || u.Scheme != "http" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return !(u.Hostname() == "localhost" || ip != nil && ip.IsLoopback())
}

// registries are the registry hosts the config mirrors.
func (d *doctor) registries() []string {
	var out []string
	for _, r := range d.cfg.Upstreams {
		if r.Registry != "" {
			out = append(out, strings.ToLower(r.Registry))
		}
	}
	return out
}

// open sends GET u; the caller closes the answer's body.
func (d *doctor) open(u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(d.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return d.client.Do(req)
}

// get asks url and returns the status and the answer's Date.
func (d *doctor) get(u string) (int, time.Time, error) {
	resp, err := d.open(u)
	if err != nil {
		return 0, time.Time{}, err
	}
	resp.Body.Close()
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	return resp.StatusCode, date, nil
}
