package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"berth/internal/oci"
	"berth/registry"
	"berth/store"

	"github.com/google/osv-scalibr/converter"
	"github.com/google/osv-scalibr/converter/spdx"
	"github.com/google/osv-scalibr/inventory"
	"github.com/spdx/tools-golang/spdx/v2/common"

	spdxjson "github.com/spdx/tools-golang/json"
)

// SBOM artifacts: the SPDX 2.3 JSON document is the one layer of an OCI
// artifact manifest whose config is the empty descriptor.
const (
	SBOMArtifactType = "application/spdx+json"
	emptyMediaType   = "application/vnd.oci.empty.v1+json"
	emptyDigest      = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	// AnnotationSBOMOf marks Berth's SBOM referrers.
	AnnotationSBOMOf = "io.berth.sbom.scanner"
)

var emptyJSON = []byte("{}")

// writeSBOM converts the inventory to SPDX JSON and stores it as a blob;
// rec gets its digest and size.
func (s *Scanner) writeSBOM(ctx context.Context, j job, inv inventory.Inventory, rec *Record) error {
	for _, p := range inv.Packages {
		// The converter hashes each package's file under its ScanRoot:
		// only relative, cleaned paths inside the scratch directory.
		p.ScanRoot = ""
		if l := p.Location.Descriptor; l != nil && l.File != nil {
			c := path.Clean(l.File.Path)
			if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
				p.Location.Descriptor = nil
			}
		}
	}
	doc := converter.ToSPDX23(inv, spdx.Config{
		DocumentName:      "berth scan of " + j.digest,
		DocumentNamespace: "https://berth.invalid/spdx/" + strings.TrimPrefix(j.digest, "sha256:") + "/" + s.o.Now().UTC().Format("20060102T150405Z"),
		Creators:          []common.Creator{{CreatorType: "Tool", Creator: "berth"}},
	})
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf); err != nil {
		return fmt.Errorf("write the SBOM: %w", err)
	}
	dg := registry.FromBytes(buf.Bytes()).String()
	// The document lists every package of the image: a local image's is
	// stored as the image's own content is (encrypted at rest when
	// encryption is on), a cached image's as cached content.
	if err := s.putBlob(ctx, dg, buf.Bytes(), !j.repo.Cached()); err != nil {
		return err
	}
	rec.SBOM, rec.SBOMSize = dg, int64(buf.Len())
	return nil
}

// putBlob stores a small blob unless it is stored already.
func (s *Scanner) putBlob(ctx context.Context, dg string, body []byte, local bool) error {
	if _, err := s.o.Store.StatBlob(ctx, dg); err == nil {
		return nil
	}
	newWriter := s.o.Store.NewBlobWriter
	if local {
		newWriter = s.o.Store.NewLocalBlobWriter
	}
	w, err := newWriter(ctx, dg, int64(len(body)))
	if err != nil {
		return fmt.Errorf("store blob %s: %w", dg, err)
	}
	if _, err := w.Write(body); err != nil {
		w.Abort()
		return fmt.Errorf("store blob %s: %w", dg, err)
	}
	if err := w.Commit(ctx); err != nil {
		return fmt.Errorf("store blob %s: %w", dg, err)
	}
	return nil
}

// sbomManifest is the referrer manifest of an image's SBOM; it is the
// same bytes in every repository that holds the image.
func sbomManifest(subject string, sm *store.Manifest, rec *Record) ([]byte, error) {
	doc := oci.Manifest{
		SchemaVersion: 2, MediaType: oci.MediaTypeImageManifest, ArtifactType: SBOMArtifactType,
		Config:      &oci.Descriptor{MediaType: emptyMediaType, Digest: emptyDigest, Size: int64(len(emptyJSON)), Data: "e30="},
		Layers:      []oci.Descriptor{{MediaType: SBOMArtifactType, Digest: rec.SBOM, Size: rec.SBOMSize}},
		Subject:     &oci.Descriptor{MediaType: sm.MediaType, Digest: subject, Size: int64(len(sm.Body))},
		Annotations: map[string]string{AnnotationSBOMOf: "osv-scalibr"},
	}
	return json.Marshal(doc)
}

// attachSBOM makes the image's SBOM a referrer of the image in repo: the
// artifact manifest is written with the repository's image record, blob
// links and referrer entry, so it is visible exactly where its subject
// is (store/visible.go), in a local or a cached repository alike.
func (s *Scanner) attachSBOM(ctx context.Context, repo store.RepoKey, subject string, sm *store.Manifest, rec *Record) error {
	if rec.SBOM == "" {
		return nil
	}
	body, err := sbomManifest(subject, sm, rec)
	if err != nil {
		return err
	}
	dg := registry.FromBytes(body).String()
	if _, err := s.o.Store.GetImage(ctx, repo, dg); err == nil {
		return nil
	}
	if _, err := s.o.Store.StatBlob(ctx, rec.SBOM); err != nil {
		return fmt.Errorf("the SBOM blob %s of %s is gone: %w", rec.SBOM, subject, err)
	}
	if err := s.putBlob(ctx, emptyDigest, emptyJSON, false); err != nil {
		return err
	}
	b := s.o.Store.NewBatch()
	defer b.Close()
	if err := b.PutManifest(dg, &store.Manifest{MediaType: oci.MediaTypeImageManifest, Body: body}); err != nil {
		return err
	}
	if err := b.PutImage(repo, dg, store.Image{PushedAt: s.o.Now().UTC(), MediaType: oci.MediaTypeImageManifest}); err != nil {
		return err
	}
	if err := b.Link(repo, rec.SBOM, emptyDigest); err != nil {
		return err
	}
	desc, err := json.Marshal(registry.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: registry.Digest(dg),
		Size: int64(len(body)), ArtifactType: SBOMArtifactType, Annotations: map[string]string{AnnotationSBOMOf: "osv-scalibr"}})
	if err != nil {
		return err
	}
	if err := b.PutReferrer(repo, subject, dg, desc); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("store the SBOM referrer of %s: %w", subject, err)
	}
	return nil
}
