package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// prepareNodeCmd readies a host for the Berth that runs on it: it writes
// containerd's certs.d/<registry>/hosts.toml, which sends pulls of each
// registry to the mirror first (the upstream stays the fallback), and
// creates the data directory owned by the user berth runs as. The
// Kubernetes DaemonSet runs it as its init container, as root, on the
// node's directories mounted into the pod (deploy/kubernetes).
func prepareNodeCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("prepare-node", flag.ContinueOnError)
	certsD := fs.String("certs-d", "", "containerd's registry config_path, e.g. /etc/containerd/certs.d")
	mirror := fs.String("mirror", "http://127.0.0.1:5000", "the mirror's URL as containerd on this host reaches it")
	registries := fs.String("registries", "docker.io", "comma-separated registries to send through the mirror")
	dataDir := fs.String("data-dir", "", "create this data directory (and chown it with --owner)")
	owner := fs.String("owner", "65532:65532", "uid:gid owning --data-dir: the user of the container image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (*certsD == "" && *dataDir == "") {
		return errors.New("usage: berth prepare-node [--certs-d DIR --mirror URL --registries a,b] [--data-dir DIR --owner UID:GID]")
	}
	if *certsD != "" {
		for _, reg := range strings.Split(*registries, ",") {
			reg = strings.TrimSpace(reg)
			if reg == "" {
				continue
			}
			p, err := writeHostsToml(*certsD, reg, *mirror)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s\n", p)
		}
	}
	if *dataDir != "" {
		if err := ownedDir(*dataDir, *owner); err != nil {
			return err
		}
		fmt.Fprintf(out, "data directory %s owned by %s\n", *dataDir, *owner)
	}
	return nil
}

// writeHostsToml writes dir/<registry>/hosts.toml: the mirror first, with
// pull and resolve, then the registry itself when the mirror fails.
func writeHostsToml(dir, registry, mirror string) (string, error) {
	if strings.ContainsAny(registry, "/\\ \"") || registry == "." || registry == ".." {
		return "", fmt.Errorf("prepare-node: %q is not a registry host name", registry)
	}
	body := hostsTomlBody(registry, mirror)
	d := filepath.Join(dir, registry)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("prepare-node: %w", err)
	}
	p := filepath.Join(d, "hosts.toml")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return "", fmt.Errorf("prepare-node: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("prepare-node: %w", err)
	}
	return p, nil
}

// hostsTomlBody is the hosts.toml of registry that sends its pulls to the
// mirror first.
func hostsTomlBody(registry, mirror string) string {
	server := "https://" + registry
	if registry == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	return fmt.Sprintf("# Written by berth prepare-node: pulls of %s go to the Berth on this host first.\n"+
		"server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", registry, server, strings.TrimRight(mirror, "/"))
}

// ownedDir creates dir (mode 0750) and gives it to owner, "uid:gid".
func ownedDir(dir, owner string) error {
	u, g, ok := strings.Cut(owner, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("prepare-node: --owner %q is not uid:gid (numbers)", owner)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("prepare-node: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("prepare-node: chown %s (run it as root): %w", dir, err)
	}
	return nil
}
