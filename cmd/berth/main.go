// Command berth is the Berth daemon and its command-line tool.
package main

import (
	"berth/node"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "berth:", err)
		}
		os.Exit(1)
	}
}

const usage = `Usage: berth <command> [flags]

Commands:
  serve         run the mirror (berth serve --config FILE)
  check-config  load and validate a config file
  healthcheck   GET the admin listener's /healthz (--url for another, such
                as /readyz); exits 1 unless it answers 200
  prepare-node  write containerd's certs.d/<registry>/hosts.toml for the
                mirror and create the data directory (the DaemonSet's init
                container)
  login, get-login-password
                print a registry token for the user (password on stdin or
                BERTH_PASSWORD), for docker login --password-stdin
  cluster members
                show the cluster's members (from the admin listener)
  export        write a bundle of images held by a node (berth export
                --output FILE [--since OLD] [--sign KEY] REF...)
  import        import a bundle into a node (berth import
                [--verify-key PUB] FILE)
  warm          fill (and --pin) the images a list or Kubernetes manifests
                name, through a running node (berth warm --from FILE
                [--platform linux/amd64 ...] [--pin])
  import-vulndb replace a node's vulnerability database with OSV zip
                dumps, JSON files or directories of them (berth
                import-vulndb [-o table] FILE|DIR...)
  keygen        make an Ed25519 key pair for signing bundles
  doctor        check this host's Docker, containerd and podman configs,
                the node, its upstreams, disk and permissions; prints each
                fix (berth doctor [--config FILE] [-o json])
  version       print the version, VCS revision, build time and Go version
`

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:])
	case "check-config":
		fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
		path := fs.String("config", "", "config file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if _, err := node.LoadConfig(*path); err != nil {
			return err
		}
		fmt.Fprintln(out, "config is valid")
		return nil
	case "healthcheck":
		return healthcheckCmd(ctx, args[1:], out)
	case "prepare-node":
		return prepareNodeCmd(args[1:], out)
	case "login", "get-login-password":
		return loginCmd(ctx, args[0], args[1:], os.Stdin, out)
	case "cluster":
		if len(args) < 2 || args[1] != "members" {
			return errors.New("usage: berth cluster members [--admin URL]")
		}
		return membersCmd(ctx, args[2:], out)
	case "export":
		return exportCmd(ctx, args[1:], out)
	case "warm":
		return warmCmd(ctx, args[1:], out)
	case "import":
		return importCmd(ctx, args[1:], out)
	case "import-vulndb":
		return importVulnDBCmd(ctx, args[1:], out)
	case "keygen":
		return keygenCmd(args[1:], out)
	case "doctor":
		return doctorCmd(ctx, args[1:], out)
	case "version":
		printVersion(out)
		return nil
	case "help", "-h", "--help":
		(&cli{out: out}).usage() // the commands and the admin verbs
		return nil
	default:
		return runCLI(ctx, args, out)
	}
}
