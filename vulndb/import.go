package vulndb

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth/store"

	"go.uber.org/zap"
)

// importer builds one new version of the database.
type importer struct {
	db   *DB
	w    *store.VulnWriter
	info Info
	// seen holds the ids indexed so far: a record in two sources (OSV's
	// dumps overlap) is indexed once, from the first.
	seen map[string]struct{}
}

// run imports what add adds as one new version, and publishes it when add
// succeeds. On an error the new version is dropped and the old one stays
// served.
func (db *DB) run(ctx context.Context, fingerprint string, add func(*importer) error) (Info, error) {
	db.importMu.Lock()
	defer db.importMu.Unlock()
	start := db.o.Now()
	w, err := db.o.Store.NewVulnVersion(ctx)
	if err != nil {
		db.m.importErrors.Inc()
		return Info{}, fmt.Errorf("start a vulnerability database version: %w", err)
	}
	im := &importer{db: db, w: w, seen: map[string]struct{}{},
		info: Info{Version: w.Version(), Fingerprint: fingerprint, Ecosystems: map[string]int{}}}
	if err := add(im); err != nil {
		db.m.importErrors.Inc()
		if aerr := w.Abort(context.WithoutCancel(ctx)); aerr != nil {
			db.log.Warn("drop a failed vulnerability database import", zap.Error(aerr))
		}
		return Info{}, err
	}
	im.info.ImportedAt = start
	im.info.ImportSeconds = db.o.Now().Sub(start).Seconds()
	return db.publish(ctx, w, im.info)
}

// publish makes info's version the one served, then drops the old one.
func (db *DB) publish(ctx context.Context, w *store.VulnWriter, info Info) (Info, error) {
	raw, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}
	db.mu.Lock()
	old, err := w.Publish(ctx, raw)
	if err != nil {
		db.mu.Unlock()
		db.m.importErrors.Inc()
		return Info{}, err
	}
	db.version, db.info = info.Version, info
	db.mu.Unlock()
	if old != 0 {
		if err := db.o.Store.DropVulnVersion(ctx, old); err != nil {
			db.log.Warn("drop the replaced vulnerability database version; the next import drops it",
				zap.Uint64("version", old), zap.Error(err))
		}
	}
	db.m.importSeconds.Observe(info.ImportSeconds)
	db.log.Info("vulnerability database imported", zap.Uint64("version", info.Version),
		zap.Strings("sources", info.Sources), zap.Int("records", info.Records),
		zap.Float64("seconds", info.ImportSeconds))
	db.notify(info)
	info.AgeSeconds = db.age(info)
	return info, nil
}

// ImportPaths imports OSV zip dumps, OSV JSON files, and directories of
// them (read recursively; other files in a directory are skipped) as one
// new version, which replaces the one served when the import is whole.
func (db *DB) ImportPaths(ctx context.Context, paths ...string) (Info, error) {
	if len(paths) == 0 {
		return Info{}, fmt.Errorf("%w: no file or directory to import", ErrInvalid)
	}
	fp, _, err := fingerprint(paths)
	if err != nil {
		db.m.importErrors.Inc()
		return Info{}, err
	}
	return db.run(ctx, fp, func(im *importer) error {
		for _, p := range paths {
			if err := im.addPath(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// addPath adds a file (by its content: zip, tar or JSON) or a directory.
func (im *importer) addPath(ctx context.Context, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	im.info.Sources = append(im.info.Sources, filepath.Base(path))
	if !st.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		defer f.Close()
		_, err = im.addStream(ctx, filepath.Base(path), f)
		return err
	}
	return filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
		if d.IsDir() || !isSourceFile(p) {
			return nil
		}
		rel, _ := filepath.Rel(filepath.Dir(path), p)
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
		defer f.Close()
		if strings.HasSuffix(p, ".zip") {
			return im.addZipFile(ctx, rel, f)
		}
		return im.addRecord(ctx, rel, f)
	})
}

// isSourceFile reports whether a file of a directory is imported.
func isSourceFile(name string) bool {
	base := filepath.Base(name)
	return !strings.HasPrefix(base, ".") && (strings.HasSuffix(base, ".json") || strings.HasSuffix(base, ".zip"))
}

// addZipFile adds the OSV records (*.json entries) of a zip dump.
func (im *importer) addZipFile(ctx context.Context, name string, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return fmt.Errorf("%w: %s: not a readable zip file: %v", ErrInvalid, name, err)
	}
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if zf.FileInfo().IsDir() || !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		if err := im.addZipEntry(ctx, name, zf); err != nil {
			return err
		}
	}
	return nil
}

func (im *importer) addZipEntry(ctx context.Context, name string, zf *zip.File) error {
	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("%w: %s: entry %s: %v", ErrInvalid, name, zf.Name, err)
	}
	defer rc.Close()
	return im.addRecord(ctx, name+": "+zf.Name, rc)
}

// addRecord validates one record and indexes it under each package it
// affects. where names the file (and entry) for errors.
func (im *importer) addRecord(ctx context.Context, where string, r io.Reader) error {
	rec, err := decodeRecord(r)
	if err != nil {
		id := ""
		if rec != nil && rec.ID != "" {
			id = " (record " + rec.ID + ")"
		}
		return fmt.Errorf("%s%s: %w", where, id, err)
	}
	if rec.Withdrawn != "" {
		im.info.Withdrawn++
		return nil
	}
	if _, dup := im.seen[rec.ID]; dup {
		im.info.Duplicates++
		return nil
	}
	entries := entriesOf(rec)
	if len(entries) == 0 {
		return nil
	}
	im.seen[rec.ID] = struct{}{}
	ecosystems := map[string]bool{}
	for k, e := range entries {
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := im.w.Put(ctx, k.ecosystem, k.name, rec.ID, v); err != nil {
			return fmt.Errorf("%s (record %s): %w", where, rec.ID, err)
		}
		ecosystems[k.ecosystem] = true
	}
	for eco := range ecosystems {
		im.info.Ecosystems[eco]++
	}
	im.info.Records++
	if m := rec.modified(); m.After(im.info.Newest) {
		im.info.Newest = m
	}
	return nil
}

type pkgKey struct{ ecosystem, name string }

// entriesOf groups a record's affected entries by package. Entries
// without a package (GIT-only) and GIT ranges are dropped.
func entriesOf(rec *record) map[pkgKey]*entry {
	out := map[pkgKey]*entry{}
	for i := range rec.Affected {
		a := &rec.Affected[i]
		if a.Package == nil {
			continue
		}
		pa := pkgAffect{Severity: severityOf(rec, a), Versions: a.Versions}
		for _, rg := range a.Ranges {
			if rg.Type != rangeGit {
				pa.Ranges = append(pa.Ranges, rg)
			}
		}
		if len(pa.Ranges) == 0 && len(pa.Versions) == 0 {
			continue
		}
		k := pkgKey{a.Package.Ecosystem, packageName(a.Package.Ecosystem, a.Package.Name)}
		e := out[k]
		if e == nil {
			e = &entry{ID: rec.ID, Aliases: rec.Aliases, Summary: rec.summary(), URI: rec.uri()}
			out[k] = e
		}
		e.Affected = append(e.Affected, pa)
	}
	return out
}

// fingerprint identifies the files under paths (names, sizes,
// modification times) and returns the newest modification time.
func fingerprint(paths []string) (string, time.Time, error) {
	h := sha256.New()
	var newest time.Time
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("import %s: %w", p, err)
			}
			if d.IsDir() || (p != root && !isSourceFile(p)) {
				return nil
			}
			st, err := d.Info()
			if err != nil {
				return fmt.Errorf("import %s: %w", p, err)
			}
			if st.ModTime().After(newest) {
				newest = st.ModTime()
			}
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, st.Size(), st.ModTime().UnixNano())
			return nil
		})
		if err != nil {
			return "", time.Time{}, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), newest, nil
}
