package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"

	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	scalibrfs "github.com/google/osv-scalibr/fs"
	"github.com/google/osv-scalibr/inventory"
)

// keptFile is a file of the image kept in the scratch directory for the
// extractors that asked for it.
type keptFile struct {
	layer int
	size  int64
	info  fs.FileInfo
	by    []filesystem.Extractor
}

// unpacker flattens an image's layers into a scratch directory, keeping
// only the files some extractor asks for (package databases, lock files,
// executables), within its limits. Names come from the image, so every
// write goes through an os.Root: nothing lands outside the directory.
type unpacker struct {
	limits     Limits
	extractors []filesystem.Extractor
	dir        string
	root       *os.Root
	kept       map[string]keptFile
	keptBytes  int64
	imageBytes int64
	// skipped counts the wanted files left out by MaxFileBytes,
	// MaxKeptBytes or MaxKeptFiles.
	skipped int
}

// osRelease are the files the OS extractors read beside their databases
// (the distribution and its version); they are always kept.
var osRelease = map[string]bool{"etc/os-release": true, "usr/lib/os-release": true}

func newUnpacker(tmp string, limits Limits, ex []filesystem.Extractor) (*unpacker, error) {
	dir, err := os.MkdirTemp(tmp, "scan-")
	if err != nil {
		return nil, fmt.Errorf("scan scratch directory in %s: %w", tmp, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("scan scratch directory: %w", err)
	}
	return &unpacker{limits: limits, extractors: ex, dir: dir, root: root, kept: map[string]keptFile{}}, nil
}

// Close removes the scratch directory.
func (u *unpacker) Close() error {
	_ = u.root.Close()
	return os.RemoveAll(u.dir)
}

// addLayer reads one layer blob (compressed or not).
func (u *unpacker) addLayer(ctx context.Context, layer int, blob io.Reader) error {
	r, done, err := decompress(blob)
	if err != nil {
		return err
	}
	defer done()
	cr := &countingReader{r: r, n: &u.imageBytes, limit: u.limits.MaxImageBytes}
	if err := u.walkLayer(ctx, layer, cr); err != nil {
		return err
	}
	// Read what follows the tar's end, so a bomb hidden after it is
	// counted too and the blob is known to be well formed.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		if errors.Is(err, ErrHostileImage) {
			return err
		}
		return hostile("layer %d does not decompress: %v", layer, err)
	}
	return nil
}

// wanted lists the extractors that want a file.
func (u *unpacker) wanted(name string, info fs.FileInfo) []filesystem.Extractor {
	var by []filesystem.Extractor
	api := fileAPI{path: name, info: info}
	for _, ex := range u.extractors {
		if ex.FileRequired(api) {
			by = append(by, ex)
		}
	}
	return by
}

// keep writes a regular file to the scratch directory when an extractor
// wants it and the limits allow.
func (u *unpacker) keep(layer int, name string, info fs.FileInfo, body io.Reader) error {
	u.forget(name)
	by := u.wanted(name, info)
	if len(by) == 0 && !osRelease[name] {
		return nil
	}
	size := info.Size()
	if size > u.limits.MaxFileBytes || u.keptBytes+size > u.limits.MaxKeptBytes || len(u.kept) >= u.limits.MaxKeptFiles {
		u.skipped++
		return nil
	}
	if err := u.dirFor(name); err != nil {
		return nil // a directory of this name is taken: the file is left out
	}
	f, err := u.root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil // a directory stands at this name: the file is left out
	}
	n, err := io.Copy(f, io.LimitReader(body, size))
	cerr := f.Close()
	if err != nil {
		if errors.Is(err, ErrHostileImage) {
			return err
		}
		return hostile("layer %d: %s: %v", layer, name, err)
	}
	if cerr != nil {
		return fmt.Errorf("scan scratch file: %w", cerr)
	}
	u.kept[name] = keptFile{layer: layer, size: n, info: info, by: by}
	u.keptBytes += n
	return nil
}

// link makes a hard link's name a copy of a kept target.
func (u *unpacker) link(layer int, name, target string) error {
	u.forget(name)
	k, ok := u.kept[target]
	if !ok {
		return nil
	}
	f, err := u.root.Open(target)
	if err != nil {
		return fmt.Errorf("scan scratch file: %w", err)
	}
	defer f.Close()
	return u.keep(layer, name, k.info, f)
}

// extract runs each kept file's extractors over it, in path order.
func (u *unpacker) extract(ctx context.Context) (inventory.Inventory, []error) {
	names := make([]string, 0, len(u.kept))
	for n := range u.kept {
		names = append(names, n)
	}
	sort.Strings(names)
	fsys := u.root.FS().(scalibrfs.FS)
	var inv inventory.Inventory
	var errs []error
	for _, n := range names {
		for _, ex := range u.kept[n].by {
			if ctx.Err() != nil {
				return inv, append(errs, ctx.Err())
			}
			got, err := u.extractOne(ctx, fsys, ex, n)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s on /%s: %w", ex.Name(), n, err))
				continue
			}
			for _, p := range got.Packages {
				p.Plugins = []string{ex.Name()}
			}
			inv.Packages = append(inv.Packages, got.Packages...)
		}
	}
	return inv, errs
}

func (u *unpacker) extractOne(ctx context.Context, fsys scalibrfs.FS, ex filesystem.Extractor, name string) (inventory.Inventory, error) {
	f, err := u.root.Open(name)
	if err != nil {
		return inventory.Inventory{}, err
	}
	defer f.Close()
	return ex.Extract(ctx, &filesystem.ScanInput{FS: fsys, Path: name, Root: u.dir, Info: u.kept[name].info, Reader: f})
}

// packagePath is where a package was found, for findings and SBOMs.
func packagePath(p *extractor.Package) string {
	if l := p.Location.PathOrEmpty(); l != "" {
		return "/" + path.Clean(l)
	}
	return ""
}
