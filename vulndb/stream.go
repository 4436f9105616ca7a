package vulndb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Kinds of input, told by their first bytes.
const (
	kindZip  = "zip"
	kindTar  = "tar"
	kindJSON = "json"
)

// ImportStream imports one upload as a new version, which replaces the
// one served when the import is whole: an OSV zip dump, one OSV JSON
// record, or a tar (gzip-compressed or not) of OSV JSON files and zip
// dumps, as `berth import-vulndb` sends a directory or several files.
// A zip is spooled to TempDir first, as reading one needs random access.
func (db *DB) ImportStream(ctx context.Context, name string, r io.Reader) (Info, error) {
	return db.run(ctx, "", func(im *importer) error {
		kind, err := im.addStream(ctx, name, r)
		if kind != kindTar {
			im.info.Sources = append(im.info.Sources, name)
		}
		return err
	})
}

// addStream adds a zip, a tar or a JSON record, told by its first bytes.
func (im *importer) addStream(ctx context.Context, name string, r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("import %s: %w", name, err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		if f, ok := r.(*os.File); ok {
			return kindZip, im.addZipFile(ctx, name, f)
		}
		return kindZip, im.spoolZip(ctx, name, br)
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
		}
		defer gz.Close()
		return im.addStream(ctx, name, gz)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return kindTar, im.addTar(ctx, name, br)
	case bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte("{")):
		return kindJSON, im.addRecord(ctx, name, br)
	}
	return "", fmt.Errorf("%w: %s is not an OSV zip dump, a tar of OSV JSON files, or an OSV JSON record", ErrInvalid, name)
}

// spoolZip copies a zip from a stream to a temporary file and adds it.
func (im *importer) spoolZip(ctx context.Context, name string, r io.Reader) error {
	f, err := os.CreateTemp(im.db.o.TempDir, "vulndb-*.zip")
	if err != nil {
		return fmt.Errorf("import %s: spool: %w", name, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("import %s: spool to %s: %w", name, f.Name(), err)
	}
	return im.addZipFile(ctx, name, f)
}

// addTar adds the *.json records and *.zip dumps of a tar; other entries
// are skipped. The tar's top-level names become the import's sources.
func (im *importer) addTar(ctx context.Context, name string, r io.Reader) error {
	tr := tar.NewReader(r)
	tops := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %s: not a readable tar: %v", ErrInvalid, name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		entry := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if hdr.Typeflag != tar.TypeReg || !isSourceFile(entry) {
			continue
		}
		if top, _, _ := strings.Cut(entry, "/"); !tops[top] {
			tops[top] = true
			im.info.Sources = append(im.info.Sources, top)
		}
		if strings.HasSuffix(entry, ".zip") {
			err = im.spoolZip(ctx, entry, tr)
		} else {
			err = im.addRecord(ctx, entry, tr)
		}
		if err != nil {
			return err
		}
	}
}
