package scan

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Limits bound what one scan reads of an image. An image pushed by a user
// is hostile input: a layer may be a tar bomb, name paths outside the
// root, or hold files far larger than any package database.
type Limits struct {
	// MaxLayers is the most layers an image may have.
	MaxLayers int
	// MaxImageBytes bounds the uncompressed bytes of all layers read (a tar
	// bomb fails the scan here).
	MaxImageBytes int64
	// MaxEntries bounds the tar entries of one layer.
	MaxEntries int
	// MaxFileBytes is the largest file handed to an extractor; larger
	// files are skipped and counted.
	MaxFileBytes int64
	// MaxKeptBytes bounds the files kept on disk for the extractors at
	// once; files beyond it are skipped and counted.
	MaxKeptBytes int64
	// MaxKeptFiles bounds the number of files kept for the extractors.
	MaxKeptFiles int
}

// DefaultLimits are the limits of config.Scanning's defaults.
func DefaultLimits() Limits {
	return Limits{MaxLayers: 256, MaxImageBytes: 16 << 30, MaxEntries: 1 << 20,
		MaxFileBytes: 256 << 20, MaxKeptBytes: 1 << 30, MaxKeptFiles: 100_000}
}

// ErrHostileImage is the kind of every refusal of an image's content: a
// layer escapes its root, exceeds a limit, or is not a tar stream.
var ErrHostileImage = errors.New("image refused by the scanner")

func hostile(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrHostileImage, fmt.Sprintf(format, a...))
}

// decompress wraps a layer blob in the decompressor its first bytes name
// (gzip, zstd, or none), whatever its media type says.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, hostile("layer is not valid gzip: %v", err)
		}
		zr.Multistream(true)
		return zr, func() { _ = zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// The window is bounded so a frame cannot ask for gigabytes of
		// memory.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20),
			zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, hostile("layer is not valid zstd: %v", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// countingReader fails once more than limit bytes were read through it.
type countingReader struct {
	r     io.Reader
	n     *int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	if *c.n > c.limit {
		return n, hostile("the image's layers unpack to more than %d bytes (scanning.maxImageBytes)", c.limit)
	}
	return n, err
}

// cleanName is a tar entry's path relative to the image root ("etc/passwd"),
// or an error when it escapes the root.
func cleanName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", hostile("tar entry name %q holds a NUL byte", name)
	}
	n := strings.TrimLeft(name, "/")
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", hostile("tar entry %q escapes the image root", name)
		}
	}
	c := path.Clean("/" + n)
	return strings.TrimPrefix(c, "/"), nil
}

// fileAPI is what an extractor's FileRequired looks at: a tar entry's path
// and header.
type fileAPI struct {
	path string
	info fs.FileInfo
}

func (f fileAPI) Path() string               { return f.path }
func (f fileAPI) Stat() (fs.FileInfo, error) { return f.info, nil }

// walkLayer reads one layer's tar stream into u.
func (u *unpacker) walkLayer(ctx context.Context, layer int, r io.Reader) error {
	tr := tar.NewReader(r)
	for entries := 0; ; entries++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if entries >= u.limits.MaxEntries {
			return hostile("layer %d has more than %d entries (scanning.maxEntries)", layer, u.limits.MaxEntries)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, ErrHostileImage) {
				return err
			}
			return hostile("layer %d is not a valid tar stream: %v", layer, err)
		}
		if err := u.entry(layer, hdr, tr); err != nil {
			return err
		}
	}
}

// entry applies one tar entry: a whiteout deletes what lower layers kept,
// a wanted regular file is kept, anything else hides what was kept at its
// path. Symbolic links are never followed or created.
func (u *unpacker) entry(layer int, hdr *tar.Header, body io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil || name == "" || name == "." {
		return err
	}
	dir, base := path.Split(name)
	if base == ".wh..wh..opq" {
		u.removeUnder(strings.TrimSuffix(dir, "/"), layer, false)
		return nil
	}
	if strings.HasPrefix(base, ".wh.") {
		u.removeUnder(dir+strings.TrimPrefix(base, ".wh."), layer, true)
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		return u.keep(layer, name, hdr.FileInfo(), body)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return err
		}
		return u.link(layer, name, target)
	case tar.TypeDir:
		u.forget(name)
		return nil
	default:
		u.forget(name)
		return nil
	}
}

// removeUnder forgets the kept files of lower layers at p (self) and
// below it.
func (u *unpacker) removeUnder(p string, layer int, self bool) {
	for k, l := range u.kept {
		if l.layer >= layer {
			continue
		}
		if (self && k == p) || p == "" || strings.HasPrefix(k, p+"/") {
			u.drop(k)
		}
	}
}

func (u *unpacker) forget(name string) {
	if _, ok := u.kept[name]; ok {
		u.drop(name)
	}
}

func (u *unpacker) drop(name string) {
	k := u.kept[name]
	_ = u.root.Remove(name)
	u.keptBytes -= k.size
	delete(u.kept, name)
}

// dirFor makes the directories of name under the root, removing a kept
// file that stands where a directory must be.
func (u *unpacker) dirFor(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	for p := dir; p != "."; p = path.Dir(p) {
		u.forget(p)
	}
	if err := u.root.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("scan scratch directory: %w", err)
	}
	return nil
}
