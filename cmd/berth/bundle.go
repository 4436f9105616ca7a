package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"berth/admin"
	"berth/bundle"
)

// adminFor is the admin client of a bundle command's --admin flag.
func adminFor(fs *flag.FlagSet, c *cli) func() *adminCall {
	url := fs.String("admin", c.env("BERTH_ADMIN", defaultAdmin), "the node's admin API (env BERTH_ADMIN)")
	return func() *adminCall { return &adminCall{c: c, base: adminBase(*url)} }
}

func newCLI(out io.Writer) *cli {
	return &cli{out: out, errOut: os.Stderr, getenv: os.Getenv, client: &http.Client{}}
}

// exportCmd is berth export: a bundle of images from a running node.
func exportCmd(ctx context.Context, args []string, out io.Writer) error {
	c := newCLI(out)
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	call := adminFor(fs, c)
	output := fs.String("output", "", "the bundle file to write (required)")
	since := fs.String("since", "", "an older bundle: leave out the blobs it carried (a delta)")
	sign := fs.String("sign", "", "a private key from berth keygen: sign the bundle's index")
	rule := fs.String("sync-rule", "", "export every image the sync rule covers: the selected tags of its repositories and of those its * patterns match in the upstream catalog")
	all := fs.Bool("all-platforms", false, "export every platform of an index (each must be held)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: berth export --output FILE [--since OLD_BUNDLE] [--sign KEYFILE] [--sync-rule NAME] [--all-platforms] REF...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *output == "" || fs.NArg() == 0 && *rule == "" {
		fs.Usage()
		return errors.New("export: --output and at least one REF (or --sync-rule) are required")
	}
	req := admin.ExportRequest{ExportRequest: bundle.ExportRequest{Refs: fs.Args(), AllPlatforms: *all}, SyncRule: *rule}
	var key ed25519.PrivateKey
	if *sign != "" {
		b, err := os.ReadFile(*sign)
		if err != nil {
			return fmt.Errorf("export --sign: %w", err)
		}
		if key, err = bundle.ParsePrivateKey(b); err != nil {
			return fmt.Errorf("export --sign %s: %w", *sign, err)
		}
	}
	if *since != "" {
		s, err := readSince(*since)
		if err != nil {
			return err
		}
		req.Since = s
	}
	body, _ := json.Marshal(req)
	resp, err := call().send(ctx, "export", "application/json", bytes.NewReader(body), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return apiError("export", resp.Status, b)
	}
	return writeBundle(*output, resp.Body, key, out)
}

// readSince lists an old bundle's blobs and its index's digest.
func readSince(path string) (*bundle.Since, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("export --since: %w", err)
	}
	defer f.Close()
	index, blobs, err := bundle.Contents(f)
	if err != nil {
		return nil, fmt.Errorf("export --since %s: %w", path, err)
	}
	if index == nil {
		return nil, fmt.Errorf("export --since %s: no index.json; is it a bundle made by berth export?", path)
	}
	return &bundle.Since{Base: bundle.Digest(index), Blobs: append([]string{}, blobs...)}, nil
}

// writeBundle writes the node's stream to path (through a temporary file,
// renamed when whole), signing its index when key is set.
func writeBundle(path string, r io.Reader, key ed25519.PrivateKey, out io.Writer) error {
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp)
	cw := &countWriter{w: f}
	if key == nil {
		_, err = io.Copy(cw, r)
	} else {
		err = signStream(cw, r, key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export: the bundle was not written whole: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(out, "wrote %s (%s)\n", path, humanBytes(cw.n))
	return nil
}

// signStream copies a bundle, adding the signature of its index.json
// right after it.
func signStream(w io.Writer, r io.Reader, key ed25519.PrivateKey) error {
	tr := tar.NewReader(r)
	var bw *bundle.Writer
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		switch {
		case bw == nil && h.Name == bundle.IndexFile:
			index, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if bw, err = bundle.NewWriter(w, index, bundle.Sign(key, index)); err != nil {
				return err
			}
		case bw == nil && h.Name == bundle.LayoutFile:
		case bw == nil:
			return fmt.Errorf("the node sent %s before index.json", h.Name)
		default:
			if err := bw.Raw(h, tr); err != nil {
				return err
			}
		}
	}
	if bw == nil {
		return errors.New("the node sent no index.json")
	}
	return bw.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// importCmd is berth import: a bundle into a running node.
func importCmd(ctx context.Context, args []string, out io.Writer) error {
	c := newCLI(out)
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	call := adminFor(fs, c)
	verify := fs.String("verify-key", "", "a public key from berth keygen: refuse the bundle unless it signed it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: berth import [--verify-key PUBFILE] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("import: give one bundle file")
	}
	hdr := http.Header{}
	if *verify != "" {
		b, err := os.ReadFile(*verify)
		if err != nil {
			return fmt.Errorf("import --verify-key: %w", err)
		}
		pub, err := bundle.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("import --verify-key %s: %w", *verify, err)
		}
		hdr.Set(admin.VerifyKeyHeader, base64.StdEncoding.EncodeToString(pub))
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	start := time.Now()
	resp, err := call().send(ctx, "import", "application/x-tar", f, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return apiError("import", resp.Status, b)
	}
	if err := printJSON(out, b); err != nil {
		return err
	}
	fmt.Fprintf(c.errOut, "imported in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// keygenCmd is berth keygen: an Ed25519 key pair for signing bundles.
func keygenCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	prefix := fs.String("output", "berth-bundle", "write PREFIX.key (private, mode 0600) and PREFIX.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	priv, pub, err := bundle.GenerateKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*prefix+".key", priv, 0o600); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := os.WriteFile(*prefix+".pub", pub, 0o644); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(out, "wrote %s.key (keep it on the exporting side) and %s.pub (give it to berth import --verify-key)\n", *prefix, *prefix)
	return nil
}
