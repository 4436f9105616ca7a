package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"berth/internal/oci"
	"berth/store"
	"berth/vulndb"

	"github.com/google/osv-scalibr/inventory"
)

// errUnsupported is an artifact that is not a container image (a Helm
// chart, a signature, an SBOM): nothing to scan.
var errUnsupported = errors.New("not a container image: its config is not an image config")

// imageConfigs are the config media types of container images.
var imageConfigs = map[string]bool{
	"application/vnd.oci.image.config.v1+json":       true,
	"application/vnd.docker.container.image.v1+json": true,
}

// scanImage scans a manifest of a repository: an image, or each stored
// platform of an index.
func (s *Scanner) scanImage(ctx context.Context, j job) error {
	m, err := s.o.Store.RepoManifest(ctx, j.repo, j.digest)
	if err != nil {
		return err
	}
	info, dberr := s.o.DB.Describe(ctx)
	if !oci.IsIndex(m.MediaType) {
		_, err := s.scanManifest(ctx, j, m, info, dberr)
		return err
	}
	return s.scanIndex(ctx, j, m, info, dberr)
}

// scanIndex scans the platforms of an index the repository holds; the
// index's record holds all their packages and findings.
func (s *Scanner) scanIndex(ctx context.Context, j job, m *store.Manifest, info vulndb.Info, dberr error) error {
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		return s.fail(ctx, j, StatusFailed, fmt.Errorf("the index does not parse: %w", err))
	}
	rec := &Record{Digest: j.digest, Repo: j.repo.Encode(), Index: true, Status: StatusComplete,
		StartedAt: s.o.Now().UTC(), Extractor: extractorVersion, DBVersion: info.Version, DBUpdatedAt: sourceUpdated(info)}
	var failed []string
	for _, child := range doc.Manifests {
		cm, err := s.o.Store.RepoManifest(ctx, j.repo, child.Digest)
		if notFound(err) || (err == nil && oci.IsIndex(cm.MediaType)) {
			continue // a platform never pulled here, or a nested index
		}
		if err != nil {
			return err
		}
		cr, err := s.scanManifest(ctx, job{repo: j.repo, digest: child.Digest, reason: j.reason}, cm, info, dberr)
		if errors.Is(err, errUnsupported) {
			continue // an attestation or other artifact beside the platforms
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, child.Digest+": "+err.Error())
			continue
		}
		rec.Platforms = append(rec.Platforms, child.Digest)
		rec.Packages = append(rec.Packages, cr.Packages...)
		rec.Findings = append(rec.Findings, cr.Findings...)
	}
	rec.Findings = sortFindings(dedupe(rec.Findings))
	rec.CompletedAt = s.o.Now().UTC()
	switch {
	case dberr != nil:
		return s.fail(ctx, j, StatusFailed, dberr)
	case len(failed) > 0:
		return s.fail(ctx, j, StatusFailed, fmt.Errorf("%d of the index's platforms failed: %v", len(failed), failed))
	case len(rec.Platforms) == 0:
		return s.fail(ctx, j, StatusUnsupported, errors.New("no platform of the index is stored in this repository: pull one, then start the scan"))
	}
	rec.Description = fmt.Sprintf("The scan was completed successfully (%d platforms).", len(rec.Platforms))
	return s.putRecord(ctx, rec)
}

// scanManifest scans one image: its packages are extracted once (a record
// of this extractor version keeps them) and matched against the database
// whenever its version is newer than the record's.
func (s *Scanner) scanManifest(ctx context.Context, j job, m *store.Manifest, info vulndb.Info, dberr error) (*Record, error) {
	prev, err := s.record(ctx, j.digest)
	if err != nil && !notFound(err) {
		return nil, err
	}
	fresh := prev != nil && prev.Status == StatusComplete && prev.Extractor == extractorVersion
	if fresh && dberr == nil && prev.DBVersion == info.Version {
		return prev, s.attachSBOM(ctx, j.repo, j.digest, m, prev)
	}
	rec := &Record{Digest: j.digest, Repo: j.repo.Encode(), Status: StatusInProgress,
		Description: "The scan is in progress.", StartedAt: s.o.Now().UTC(), Extractor: extractorVersion}
	if fresh {
		rec.Packages, rec.SBOM, rec.SBOMSize = prev.Packages, prev.SBOM, prev.SBOMSize
	} else {
		if prev == nil || prev.Status != StatusComplete {
			if err := s.putRecord(ctx, rec); err != nil {
				return nil, err
			}
		}
		skipped, err := s.extractInto(ctx, j, m, rec)
		if errors.Is(err, errUnsupported) {
			return nil, errors.Join(err, s.fail(ctx, j, StatusUnsupported, err))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, errors.Join(err, s.fail(ctx, j, StatusFailed, err))
		}
		rec.Description = "The scan was completed successfully."
		if skipped > 0 {
			rec.Description += fmt.Sprintf(" %d files were skipped by the scanner's size limits.", skipped)
		}
	}
	if dberr != nil {
		return nil, s.fail(ctx, j, StatusFailed, dberr)
	}
	findings, err := s.match(ctx, rec.Packages)
	if err != nil {
		return nil, errors.Join(err, s.fail(ctx, j, StatusFailed, err))
	}
	if fresh {
		rec.Description = prev.Description
	}
	rec.Status, rec.Findings = StatusComplete, findings
	rec.DBVersion, rec.DBUpdatedAt, rec.CompletedAt = info.Version, sourceUpdated(info), s.o.Now().UTC()
	if err := s.putRecord(ctx, rec); err != nil {
		return nil, err
	}
	return rec, s.attachSBOM(ctx, j.repo, j.digest, m, rec)
}

// fail records a scan that could not complete, with why.
func (s *Scanner) fail(ctx context.Context, j job, status string, cause error) error {
	now := s.o.Now().UTC()
	rec := &Record{Digest: j.digest, Repo: j.repo.Encode(), Status: status, Description: cause.Error(),
		StartedAt: now, CompletedAt: now}
	if err := s.putRecord(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	return cause
}

// extractInto reads the image's layers and fills rec's packages and SBOM.
// It returns how many wanted files the limits left out.
func (s *Scanner) extractInto(ctx context.Context, j job, m *store.Manifest, rec *Record) (int, error) {
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		return 0, fmt.Errorf("the manifest does not parse: %w", err)
	}
	if doc.Config == nil || !imageConfigs[doc.Config.MediaType] || doc.Subject != nil {
		return 0, errUnsupported
	}
	set := s.o.Settings()
	lim := DefaultLimits()
	lim.MaxImageBytes, lim.MaxFileBytes, lim.MaxKeptBytes = set.MaxImageBytes, set.MaxFileBytes, set.MaxKeptBytes
	if len(doc.Layers) > lim.MaxLayers {
		return 0, hostile("the image has %d layers, more than %d", len(doc.Layers), lim.MaxLayers)
	}
	if j.repo.Cached() && s.o.Fill != nil {
		if err := s.o.Fill(ctx, j.repo, j.digest); err != nil {
			return 0, fmt.Errorf("fetch the image's layers: %w", err)
		}
	}
	u, err := newUnpacker(s.o.TempDir, lim, s.ex)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	for i, l := range doc.Layers {
		if oci.NonDistributable(l.MediaType) {
			continue
		}
		if err := s.readLayer(ctx, u, i, l.Digest); err != nil {
			return 0, err
		}
	}
	inv, errs := u.extract(ctx)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for _, e := range errs {
		s.o.Logger.Debug("extractor failed on a file: " + e.Error())
	}
	rec.Packages = packagesOf(inv)
	if err := s.writeSBOM(ctx, j, inv, rec); err != nil {
		return 0, err
	}
	return u.skipped, nil
}

// readLayer feeds one stored layer to the unpacker.
func (s *Scanner) readLayer(ctx context.Context, u *unpacker, i int, digest string) error {
	f, _, err := s.o.Store.OpenBlob(ctx, digest)
	if notFound(err) {
		return fmt.Errorf("layer %d (%s) is not stored on this node: push or pull it, then start the scan again", i, digest)
	}
	if err != nil {
		return fmt.Errorf("open layer %d (%s): %w", i, digest, err)
	}
	defer f.Close()
	return u.addLayer(ctx, i, io.Reader(f))
}

func packagesOf(inv inventory.Inventory) []Package {
	out := make([]Package, 0, len(inv.Packages))
	for _, p := range inv.Packages {
		out = append(out, osvPackage(p))
	}
	return out
}

func dedupe(fs []Finding) []Finding {
	seen := map[string]bool{}
	out := fs[:0]
	for _, f := range fs {
		k := f.Name + "\x00" + f.Attr("package_ecosystem") + "\x00" + f.Attr("package_name") + "\x00" + f.Attr("package_version")
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	return out
}

// sourceUpdated is when the database's content was last updated: its
// newest record, else its import.
func sourceUpdated(info vulndb.Info) time.Time {
	if !info.Newest.IsZero() {
		return info.Newest.UTC()
	}
	return info.ImportedAt.UTC()
}
