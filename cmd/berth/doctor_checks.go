package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"berth/upstream"
)

// maxSkew is the clock difference doctor warns about: tokens and TTLs
// assume clocks that agree.
const maxSkew = 30 * time.Second

// checkBerth checks that the registry and the admin listener answer, and
// the node's clock.
func (d *doctor) checkBerth() {
	st, date, err := d.get(d.mirror + "/v2/")
	switch {
	case err != nil:
		d.add("berth", "fail", fmt.Sprintf("the registry does not answer at %s: %v", d.mirror, err),
			&fix{Command: "sudo systemctl start berth; journalctl -u berth -n 50 (or pass --mirror URL)"})
	case st != http.StatusOK && st != http.StatusUnauthorized:
		d.add("berth", "fail", fmt.Sprintf("GET %s/v2/ answered %d", d.mirror, st), nil)
	default:
		d.add("berth", "ok", fmt.Sprintf("the registry answers at %s", d.mirror), nil)
		d.skew("clock", "the node at "+d.mirror, date)
	}
	if d.admin == "" {
		return
	}
	if st, _, err := d.get(d.admin + "/healthz"); err != nil || st != http.StatusOK {
		d.add("berth-admin", "warn", fmt.Sprintf("the admin listener does not answer at %s/healthz (%d, %v)", d.admin, st, err),
			&fix{Command: "check admin.listen in the config, or pass --admin URL"})
	} else {
		d.add("berth-admin", "ok", "the admin listener answers at "+d.admin, nil)
	}
}

// skew compares a peer's clock (an answer's Date) with this host's.
func (d *doctor) skew(check, who string, date time.Time) {
	if date.IsZero() {
		return
	}
	diff := d.now().Sub(date).Round(time.Second)
	if diff < -maxSkew || diff > maxSkew {
		d.add(check, "warn", fmt.Sprintf("this host's clock and %s differ by %s", who, diff),
			&fix{Command: "timedatectl set-ntp true (on both hosts)"})
	}
}

// readClientFile reads a client's config file; a missing one means the
// client is not configured here (a skip), ok false.
func (d *doctor) readClientFile(check, path, client string) ([]byte, bool) {
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.add(check, "skip", path+" does not exist: "+client+" is not configured on this host", nil)
		return nil, false
	case err != nil:
		d.add(check, "fail", err.Error(), nil)
		return nil, false
	}
	return raw, true
}

// checkDocker checks daemon.json: registry-mirrors names the mirror, and
// insecure-registries its host when it speaks plain HTTP off loopback.
func (d *doctor) checkDocker() {
	raw, ok := d.readClientFile("docker", d.daemonJSON, "Docker")
	if !ok {
		return
	}
	conf := map[string]any{}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &conf); err != nil {
			d.add("docker", "fail", fmt.Sprintf("%s is not valid JSON: %v", d.daemonJSON, err), nil)
			return
		}
	}
	var problems []string
	if !slices.Contains(trimmed(conf["registry-mirrors"]), d.mirror) {
		problems = append(problems, "registry-mirrors does not name "+d.mirror)
		conf["registry-mirrors"] = append(trimmed(conf["registry-mirrors"]), d.mirror)
	}
	if d.insecure() && !slices.Contains(trimmed(conf["insecure-registries"]), d.mirrorHost()) {
		problems = append(problems, "insecure-registries does not name "+d.mirrorHost()+" (the mirror speaks plain HTTP)")
		conf["insecure-registries"] = append(trimmed(conf["insecure-registries"]), d.mirrorHost())
	}
	if len(problems) == 0 {
		d.add("docker", "ok", d.daemonJSON+" sends Docker Hub pulls to "+d.mirror, nil)
		return
	}
	body, _ := json.MarshalIndent(conf, "", "  ")
	d.add("docker", "fail", d.daemonJSON+": "+strings.Join(problems, "; "),
		&fix{File: d.daemonJSON, Content: string(body), Command: "sudo systemctl restart docker"})
}

// trimmed reads a JSON list of strings, without trailing slashes.
func trimmed(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, strings.TrimRight(s, "/"))
		}
	}
	return out
}

var configPathRe = regexp.MustCompile(`(?m)^\s*config_path\s*=\s*"([^"]*)"`)

// checkContainerd checks that containerd reads a hosts directory and that
// it has a hosts.toml sending each mirrored registry to the mirror.
func (d *doctor) checkContainerd() {
	raw, ok := d.readClientFile("containerd", d.containerdConfig, "containerd")
	if !ok {
		return
	}
	m := configPathRe.FindSubmatch(raw)
	if m == nil || string(m[1]) == "" {
		d.add("containerd", "fail", d.containerdConfig+" sets no registry config_path, so containerd reads no hosts.toml",
			&fix{File: d.containerdConfig, Content: "# add (containerd 1.x/2.x CRI):\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"" + d.certsD + "\"",
				Command: "sudo systemctl restart containerd"})
	} else {
		d.certsD = string(m[1])
		d.add("containerd", "ok", d.containerdConfig+" reads hosts from "+d.certsD, nil)
	}
	for _, reg := range d.registries() {
		p := filepath.Join(d.certsD, reg, "hosts.toml")
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), fmt.Sprintf("[host.%q]", d.mirror)) {
			d.add("containerd/"+reg, "ok", p+" sends pulls to "+d.mirror, nil)
			continue
		}
		why := "does not name " + d.mirror
		if err != nil {
			why = "cannot be read: " + err.Error()
		}
		d.add("containerd/"+reg, "fail", p+" "+why,
			&fix{File: p, Content: hostsTomlBody(reg, d.mirror), Command: "berth prepare-node --certs-d " + d.certsD + " --mirror " + d.mirror + " --registries " + reg})
	}
}

// checkRegistriesConf checks podman's and CRI-O's registries.conf for a
// mirror entry of each mirrored registry.
func (d *doctor) checkRegistriesConf() {
	raw, ok := d.readClientFile("registries.conf", d.registriesConf, "podman and CRI-O")
	if !ok {
		return
	}
	text := string(raw)
	for _, reg := range d.registries() {
		if registryBlockHasMirror(text, reg, d.mirrorHost()) {
			d.add("registries.conf/"+reg, "ok", d.registriesConf+" mirrors "+reg+" at "+d.mirrorHost(), nil)
			continue
		}
		block := fmt.Sprintf("[[registry]]\nprefix = %q\nlocation = %q\n\n[[registry.mirror]]\nlocation = %q\n", reg, reg, d.mirrorHost())
		if !strings.HasPrefix(d.mirror, "https://") {
			block += "insecure = true\n"
		}
		d.add("registries.conf/"+reg, "fail", d.registriesConf+" has no mirror "+d.mirrorHost()+" for "+reg,
			&fix{File: d.registriesConf, Content: "# add:\n" + block})
	}
}

// registryBlockHasMirror reports whether the [[registry]] table of reg
// lists a mirror at host.
func registryBlockHasMirror(text, reg, host string) bool {
	for _, block := range strings.Split(text, "[[registry]]")[1:] {
		if !strings.Contains(block, fmt.Sprintf("%q", reg)) {
			continue
		}
		if strings.Contains(block, "[[registry.mirror]]") && strings.Contains(block, fmt.Sprintf("location = %q", host)) {
			return true
		}
	}
	return false
}

// checkUpstreams asks each online upstream's /v2/ through the transport
// Berth uses (proxy settings, CA files, the fence), and checks that its
// credential files can be read.
func (d *doctor) checkUpstreams() {
	for _, r := range d.cfg.Upstreams {
		check := "upstream/" + r.Name
		if r.Offline || d.cfg.Offline {
			d.add(check, "skip", "offline: Berth never contacts it", nil)
			continue
		}
		for _, f := range []string{r.PasswordFile, r.DockerConfig} {
			if f == "" {
				continue
			}
			if _, err := os.ReadFile(f); err != nil {
				d.add(check, "fail", "the credentials cannot be read: "+err.Error(), &fix{Command: "check the file, and that the user berth runs as can read it"})
			}
		}
		rt, err := upstream.DefaultTransport(r)
		if err != nil {
			d.add(check, "fail", err.Error(), nil)
			continue
		}
		c := &http.Client{Transport: rt, Timeout: 10 * time.Second}
		req, _ := http.NewRequestWithContext(d.ctx, http.MethodGet, strings.TrimRight(r.URL, "/")+"/v2/", nil)
		resp, err := c.Do(req)
		if err != nil {
			d.add(check, "fail", fmt.Sprintf("%s cannot be reached: %v", r.URL, err),
				&fix{Command: "check DNS, the firewall and HTTPS_PROXY/NO_PROXY; on a site without a route, set offline: true"})
			continue
		}
		resp.Body.Close()
		msg := fmt.Sprintf("%s answers (%d)", r.URL, resp.StatusCode)
		if rem := resp.Header.Get("RateLimit-Remaining"); rem != "" {
			msg += "; quota remaining " + rem
		}
		d.add(check, "ok", msg, nil)
		date, _ := http.ParseTime(resp.Header.Get("Date"))
		d.skew("clock", r.URL, date)
	}
}

// checkDisk checks the free space of the data directory's file system.
func (d *doctor) checkDisk() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.cfg.DataDir, &st); err != nil {
		d.add("disk", "warn", fmt.Sprintf("cannot read the free space of %s: %v", d.cfg.DataDir, err), nil)
		return
	}
	free, total := int64(st.Bavail)*int64(st.Bsize), int64(st.Blocks)*int64(st.Bsize)
	msg := fmt.Sprintf("%s has %s free of %s", d.cfg.DataDir, humanBytes(free), humanBytes(total))
	switch {
	case d.cfg.Cache.MinFreeBytes > 0 && free < d.cfg.Cache.MinFreeBytes:
		d.add("disk", "fail", msg+", under cache.minFreeBytes", &fix{Command: "free space, or lower cache.maxBytes"})
	case total > 0 && free*20 < total:
		d.add("disk", "warn", msg+" (under 5%)", &fix{Command: "free space, or set cache.maxBytes"})
	default:
		d.add("disk", "ok", msg, nil)
	}
}

// checkPermissions checks that secret files are not readable by everyone.
func (d *doctor) checkPermissions() {
	files := []string{d.cfg.Auth.Htpasswd, d.cfg.Cluster.SecretFile}
	for _, r := range d.cfg.Upstreams {
		files = append(files, r.PasswordFile, r.DockerConfig, r.KeyFile)
	}
	bad := 0
	for _, f := range files {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o004 != 0 {
			bad++
			d.add("permissions", "warn", f+" is readable by every user of this host", &fix{Command: "chmod o-rwx " + f})
		}
	}
	if fi, err := os.Stat(d.cfg.DataDir); err == nil && fi.Mode().Perm()&0o002 != 0 {
		bad++
		d.add("permissions", "warn", d.cfg.DataDir+" is writable by every user of this host", &fix{Command: "chmod o-w " + d.cfg.DataDir})
	}
	if bad == 0 {
		d.add("permissions", "ok", "secret files and the data directory are not open to every user", nil)
	}
}
