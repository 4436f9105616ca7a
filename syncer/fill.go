package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"berth/errdefs"
	"berth/internal/oci"
	"berth/registry"
)

// filler pulls images through the backend as a client pull does: a sync
// run's and warm's one fill path.
type filler struct {
	backend Backend
	// platforms limits an index's children (all when empty).
	platforms []string
	// bytes is told of the bytes that came from the upstream.
	bytes func(int64)
	// seen are the manifests pulled in this run, "repo@digest": an
	// index an upstream makes refer to itself is followed once.
	seen map[string]bool
}

// maxDepth bounds how deep a fill follows indexes and referrers.
const maxDepth = 8

// Filled is one image's fill: its manifest's digest and the blob and
// manifest bytes that came from the upstream (not already held).
type Filled struct {
	Digest string
	Bytes  int64
}

// Fill pulls one image (repo at ref, a tag or a digest) through the node's
// backend as a client pull would: its manifest, the chosen platforms'
// children of an index (all when platforms is empty; "os/arch" or
// "os/arch/variant") and their configs and layers. Warm fills this way.
func (s *Syncer) Fill(ctx context.Context, repo registry.Repo, ref string, platforms []string) (Filled, error) {
	var out Filled
	if s.o.Backend == nil {
		return out, errdefs.New(errdefs.ErrUnsupported, "this node has no backend to fill through")
	}
	f := &filler{backend: s.o.Backend, platforms: platforms, bytes: func(n int64) { out.Bytes += n }, seen: map[string]bool{}}
	d, err := f.image(ctx, repo, ref, false, 0)
	out.Digest = d.String()
	return out, err
}

// image pulls a manifest by ref, then its platforms' children (an index)
// or its config and layers, and with referrers the manifests that refer
// to it; depth is how many manifests led to it. It returns the manifest's
// digest.
func (f *filler) image(ctx context.Context, repo registry.Repo, ref string, referrers bool, depth int) (registry.Digest, error) {
	if depth > maxDepth {
		return "", fmt.Errorf("%s is nested more than %d manifests deep; not followed", ref, maxDepth)
	}
	if registry.IsDigest(ref) && f.seen[repo.Name+"@"+ref] {
		return registry.Digest(ref), nil
	}
	req := registry.ManifestRequest{Repo: repo, Reference: ref, Accept: strings.Split(oci.AcceptManifests, ", ")}
	if registry.IsDigest(ref) {
		d, err := registry.ParseDigest(ref)
		if err != nil {
			return "", err
		}
		req.Digest = d
	}
	m, err := f.backend.GetManifest(ctx, req)
	if err != nil {
		return "", err
	}
	if m.Source != registry.SourceStore && m.Source != registry.SourceStale {
		f.bytes(int64(len(m.Body)))
	}
	if f.seen[repo.Name+"@"+m.Digest.String()] {
		return m.Digest, nil
	}
	f.seen[repo.Name+"@"+m.Digest.String()] = true
	var doc oci.Manifest
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		return m.Digest, fmt.Errorf("manifest %s is not JSON: %w", m.Digest, err)
	}
	var errs []error
	for _, child := range doc.Manifests {
		p := child.Platform
		if p == nil && len(f.platforms) > 0 || p != nil && !matchPlatform(f.platforms, p.OS, p.Architecture, p.Variant) {
			continue
		}
		_, err := f.image(ctx, repo, child.Digest, false, depth+1)
		errs = append(errs, err)
	}
	for _, b := range doc.Refs() {
		if !oci.IsManifest(b.MediaType) && !oci.NonDistributable(b.MediaType) {
			errs = append(errs, f.blob(ctx, repo, b.Digest))
		}
	}
	if referrers {
		errs = append(errs, f.referrers(ctx, repo, m.Digest, depth+1))
	}
	return m.Digest, errors.Join(errs...)
}

// blob pulls one blob through; one the node holds is not read.
func (f *filler) blob(ctx context.Context, repo registry.Repo, digest string) error {
	d, err := registry.ParseDigest(digest)
	if err != nil {
		return err
	}
	b, err := f.backend.GetBlob(ctx, registry.BlobRequest{Repo: repo, Digest: d})
	if err != nil {
		return err
	}
	if b.Source() == registry.SourceStore {
		return nil
	}
	rc, err := b.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	f.bytes(n)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	return nil
}

// referrers pulls the manifests that refer to d (signatures, SBOMs).
func (f *filler) referrers(ctx context.Context, repo registry.Repo, d registry.Digest, depth int) error {
	rl, ok := f.backend.(referrersLister)
	if !ok {
		return nil
	}
	descs, err := rl.Referrers(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("referrers of %s: %w", d, err)
	}
	var errs []error
	for _, r := range descs {
		_, err := f.image(ctx, repo, r.Digest.String(), false, depth)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
