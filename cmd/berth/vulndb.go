package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"berth/admin"
)

// vulnVerbs are the verbs of the vulnerability database (import-vulndb is
// a command of its own: it uploads a file).
func vulnVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"describe-vulndb": {
			summary: "describe the vulnerability database: version, sources, records per ecosystem, age",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				return func() (any, error) { return admin.DescribeVulnDBRequest{}, nil }
			},
			table: tableVulnDB,
		},
	}
}

func tableVulnDB(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.VulnDBResponse](body)
	if err != nil {
		return err
	}
	d := r.Database
	age := time.Duration(d.AgeSeconds * float64(time.Second)).Round(time.Second)
	if err := writeTable(w, "VERSION\tIMPORTED\tRECORDS\tNEWEST RECORD\tAGE\tSOURCES", []string{
		cells(d.Version, fmtTime(&d.ImportedAt), d.Records, fmtTime(&d.Newest), age, strings.Join(d.Sources, ",")),
	}); err != nil {
		return err
	}
	var ecos []string
	for eco := range d.Ecosystems {
		ecos = append(ecos, eco)
	}
	slices.Sort(ecos)
	rows := make([]string, 0, len(ecos))
	for _, eco := range ecos {
		rows = append(rows, cells(eco, d.Ecosystems[eco]))
	}
	fmt.Fprintln(w)
	return writeTable(w, "ECOSYSTEM\tRECORDS", rows)
}

// importVulnDBCmd is berth import-vulndb: OSV zip dumps, JSON files or
// directories uploaded to a running node as its new vulnerability
// database. One file goes as it is; directories and several files go as
// one tar, built while it is sent.
func importVulnDBCmd(ctx context.Context, args []string, out io.Writer) error {
	c := newCLI(out)
	fs := flag.NewFlagSet("import-vulndb", flag.ContinueOnError)
	call := adminFor(fs, c)
	var output string
	fs.StringVar(&output, "output", "json", "output format: json or table")
	fs.StringVar(&output, "o", "json", "shorthand for --output")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: berth import-vulndb [-o table] FILE|DIR...\n\nFILE is an OSV zip dump (an ecosystem's all.zip) or an OSV JSON record; DIR holds them (read recursively). All of them become the node's new vulnerability database.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("import-vulndb: give an OSV zip dump, JSON file or directory")
	}
	if output != "json" && output != "table" {
		return fmt.Errorf("--output: %q is not json or table", output)
	}
	body, ctype, err := vulnDBBody(fs.Args())
	if err != nil {
		return fmt.Errorf("import-vulndb: %w", err)
	}
	defer body.Close()
	verb := "import-vulndb?" + admin.VulnDBSourceParam + "=" + url.QueryEscape(filepath.Base(fs.Arg(0)))
	start := time.Now()
	resp, err := call().send(ctx, verb, ctype, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return apiError("import-vulndb", resp.Status, b)
	}
	fmt.Fprintf(c.errOut, "imported in %s\n", time.Since(start).Round(time.Millisecond))
	if output == "table" {
		return tableVulnDB(out, b)
	}
	return printJSON(out, b)
}

// vulnDBBody is the upload of paths and its content type: one file as it
// is, typed by its first bytes; otherwise a tar streamed from a pipe.
func vulnDBBody(paths []string) (io.ReadCloser, string, error) {
	if len(paths) == 1 {
		st, err := os.Stat(paths[0])
		if err != nil {
			return nil, "", err
		}
		if !st.IsDir() {
			f, err := os.Open(paths[0])
			if err != nil {
				return nil, "", err
			}
			head, _ := bufio.NewReader(f).Peek(262)
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				f.Close()
				return nil, "", err
			}
			return f, sniffVulnDB(head), nil
		}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, "", err
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeVulnTar(pw, paths)) }()
	return pr, "application/x-tar", nil
}

// sniffVulnDB is the content type of a file by its first bytes.
func sniffVulnDB(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("PK")):
		return "application/zip"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "application/gzip"
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return "application/x-tar"
	}
	return "application/json"
}

// writeVulnTar writes the files of paths to a tar: a file under its base
// name, a directory's *.json and *.zip files under the directory's name.
func writeVulnTar(w io.Writer, paths []string) error {
	tw := tar.NewWriter(w)
	for _, root := range paths {
		parent := filepath.Dir(filepath.Clean(root))
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if p != root && !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".zip") {
				return nil
			}
			rel, err := filepath.Rel(parent, p)
			if err != nil {
				return err
			}
			return addTarFile(tw, p, filepath.ToSlash(rel))
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

func addTarFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
