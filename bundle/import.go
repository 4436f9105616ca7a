package bundle

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"berth/errdefs"
	"berth/internal/oci"
	"berth/registry"
	"berth/store"
)

// Pusher is the node's backend as a push reaches it: local images are
// imported through it (uploads, mounts, manifest PUTs), so they are
// validated and recorded as a push is.
type Pusher interface {
	registry.Uploader
	registry.BlobMounter
	registry.ManifestPutter
}

// ImportResult says what an import did.
type ImportResult struct {
	// Images are the routes imported, as clients pull them.
	Images []string `json:"images"`
	// Blobs and Bytes were written; Held blobs were already in the store.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	Held  int   `json:"held"`
	// Base is the bundle a delta was based on.
	Base string `json:"base,omitempty"`
}

// importer is one import in progress.
type importer struct {
	s      Store
	push   Pusher
	keys   []ed25519.PublicKey
	res    ImportResult
	index  []byte
	x      *Index
	sig    []byte
	routes []route
	// manifests are the bundle's manifests read so far, by digest; wanted
	// the digests the index and those manifests name as manifests.
	manifests map[string][]byte
	wanted    map[string]bool
	// owners are the routes whose images need a blob, by digest.
	owners   map[string]map[int]bool
	verified bool
	// uploaded are the blobs linked to a local repository here.
	uploaded map[string]map[string]bool
	// carried are the blobs the bundle carried, verified.
	carried map[string]bool
	// manifestBytes is the size of manifests; ownerships the entries of
	// owners.
	manifestBytes int64
	ownerships    int
}

// Bounds of what an import holds in memory until it commits.
const (
	// MaxRoutes is how many images a bundle's index.json may name.
	MaxRoutes = 4096
	// MaxManifestBytes is how many bytes of manifests a bundle may carry.
	MaxManifestBytes = 64 << 20
	// MaxOwnerships is how many (image, blob) pairs its images may name.
	MaxOwnerships = 1 << 20
)

// Import reads a bundle from r and stores its images: each blob is
// verified against its digest as it streams, and the images' records are
// written only once every blob and the signature (made by one of keys,
// when there are any) verified, so a refused bundle leaves no image behind. Blobs already held
// are verified and skipped: an import can be run again after an
// interruption.
func (s Store) Import(ctx context.Context, r io.Reader, push Pusher, keys ...ed25519.PublicKey) (*ImportResult, error) {
	im := &importer{s: s, push: push, keys: keys, manifests: map[string][]byte{}, wanted: map[string]bool{},
		owners: map[string]map[int]bool{}, uploaded: map[string]map[string]bool{}, carried: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, readFailed(err, "the bundle is not a readable tar file")
		}
		if err := im.entry(ctx, h, tr); err != nil {
			return nil, err
		}
	}
	if im.x == nil {
		return nil, invalid("the bundle has no index.json")
	}
	if err := im.checkSignature(); err != nil {
		return nil, err
	}
	if err := im.commit(ctx); err != nil {
		return nil, err
	}
	return &im.res, nil
}

func invalid(format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidParameter, "bundle refused: "+format, args...)
}

// refuse is invalid with its cause kept for errors.Is.
func refuse(cause error, format string, args ...any) error {
	return errdefs.Wrap(errdefs.ErrInvalidParameter, cause, "bundle refused: "+format, args...)
}

// readFailed is a failure to read the bundle from its stream: a damaged
// or cut tar (or a short entry, cause nil) is the bundle's fault; any
// other cause (the connection's, a cancelled request's) is wrapped as it
// is, so the caller tells them apart with errors.Is.
func readFailed(cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if cause == nil || errors.Is(cause, io.ErrUnexpectedEOF) || errors.Is(cause, tar.ErrHeader) ||
		errors.Is(cause, tar.ErrFieldTooLong) || errors.Is(cause, tar.ErrInsecurePath) {
		return refuse(cause, "%s: the bundle is cut short or damaged; nothing was imported", msg)
	}
	return fmt.Errorf("bundle: %s: %w", msg, cause)
}

// entry reads one tar entry.
func (im *importer) entry(ctx context.Context, h *tar.Header, r io.Reader) error {
	switch {
	case h.Typeflag == tar.TypeDir || h.Name == LayoutFile:
		return nil
	case h.Name == IndexFile:
		// One index: a second one, appended after the signed first,
		// would add images the signature never covered.
		if im.x != nil {
			return invalid("the bundle has more than one %s; it was changed after berth export wrote it", IndexFile)
		}
		return im.readIndex(r)
	case h.Name == SignatureFile:
		if im.sig != nil || im.verified {
			return invalid("the bundle has more than one %s, or one after its blobs; it was changed after berth export wrote it", SignatureFile)
		}
		b, err := io.ReadAll(io.LimitReader(r, 4096))
		if b == nil {
			b = []byte{}
		}
		im.sig = b
		return err
	}
	d, ok := BlobDigest(h.Name)
	if !ok {
		return nil // another file of the layout
	}
	if im.x == nil {
		return invalid("blob %s comes before index.json; import bundles made by berth export", d)
	}
	if err := im.checkSignature(); err != nil {
		return err
	}
	if im.wanted[d] {
		return im.readManifest(d, h.Size, r)
	}
	return im.readBlob(ctx, d, h.Size, r)
}

func (im *importer) readIndex(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, oci.MaxManifestBytes+1))
	if err != nil {
		return readFailed(err, "reading index.json")
	}
	if im.x, err = ParseIndex(b); err != nil {
		return refuse(err, "%v", err)
	}
	if len(im.x.Manifests) > MaxRoutes {
		return invalid("index.json names %d images; a bundle carries at most %d: export them in several bundles", len(im.x.Manifests), MaxRoutes)
	}
	im.index = b
	im.res.Base = im.x.Annotations[AnnotationBase]
	for i, m := range im.x.Manifests {
		ref := m.Annotations[AnnotationRoute]
		if ref == "" {
			ref = m.Annotations[AnnotationRefName]
		}
		rt, err := im.s.resolve(ref)
		if err != nil {
			return refuse(err, "index.json entry %d (%q): %v", i, ref, err)
		}
		rt.digest = m.Digest
		im.routes = append(im.routes, rt)
		im.want(m.Digest, i)
	}
	return nil
}

func (im *importer) want(d string, owner int) {
	im.wanted[d] = true
	im.own(d, owner)
}

func (im *importer) own(d string, owner int) {
	if im.owners[d] == nil {
		im.owners[d] = map[int]bool{}
	}
	if !im.owners[d][owner] {
		im.owners[d][owner] = true
		im.ownerships++
	}
}

// checkSignature verifies the signature once, before the first blob.
func (im *importer) checkSignature() error {
	if im.verified || len(im.keys) == 0 {
		return nil
	}
	if err := VerifyAny(im.keys, im.index, im.sig); err != nil {
		return errdefs.Wrap(errdefs.ErrInvalidParameter, err, "bundle refused: %v; nothing was imported", err)
	}
	im.verified = true
	return nil
}

// readManifest keeps a manifest of the bundle and learns what it needs.
func (im *importer) readManifest(d string, size int64, r io.Reader) error {
	if size > oci.MaxManifestBytes {
		return invalid("manifest %s is larger than %d bytes", d, oci.MaxManifestBytes)
	}
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return readFailed(err, "reading manifest %s", d)
	}
	if Digest(b) != d {
		return invalid("manifest %s does not match its digest: the bundle was changed or damaged; nothing was imported", d)
	}
	if im.manifestBytes += int64(len(b)); im.manifestBytes > MaxManifestBytes {
		return invalid("its manifests take more than %d bytes together; export the images in several bundles", MaxManifestBytes)
	}
	im.manifests[d] = b
	var doc oci.Manifest
	if err := json.Unmarshal(b, &doc); err != nil {
		return refuse(err, "manifest %s is not valid JSON: %v", d, err)
	}
	for owner := range im.owners[d] {
		if im.ownerships > MaxOwnerships {
			return invalid("its images reference more than %d blobs and manifests together; export them in several bundles", MaxOwnerships)
		}
		for _, c := range doc.Refs() {
			if oci.IsManifest(c.MediaType) {
				im.want(c.Digest, owner)
			} else if !oci.NonDistributable(c.MediaType) {
				im.own(c.Digest, owner)
			}
		}
	}
	return nil
}

// readBlob verifies one blob and stores it: into the store as a fill does
// for cached images, through an upload as a push does for local ones.
func (im *importer) readBlob(ctx context.Context, d string, size int64, r io.Reader) error {
	owners := im.owners[d]
	if len(owners) == 0 {
		return invalid("blob %s is not needed by any image of the bundle's index", d)
	}
	var cached bool
	var local []string
	for o := range owners {
		if rt := im.routes[o]; rt.ns == LocalNS {
			local = append(local, rt.repo)
		} else {
			cached = true
		}
	}
	if _, err := im.s.Store.StatBlob(ctx, d); err == nil && !cached && len(local) == 0 {
		return nil
	} else if err == nil && cached && len(local) == 0 {
		im.res.Held++
		if err := verifyOnly(d, size, r); err != nil {
			return err
		}
		im.carried[d] = true
		return nil
	}
	var bw *store.BlobWriter
	if cached {
		if im.s.Reserve != nil && len(local) == 0 {
			if err := im.s.Reserve(ctx, size); err != nil {
				return err
			}
		}
		var err error
		if bw, err = im.s.Store.NewBlobWriter(ctx, d, size); err != nil {
			return err
		}
		defer bw.Abort()
	}
	if len(local) > 0 {
		return im.upload(ctx, d, size, r, local, bw)
	}
	if n, err := io.Copy(bw, io.LimitReader(r, size)); err != nil || n != size {
		return readFailed(err, "blob %s ends after %d of %d bytes", d, n, size)
	}
	if err := bw.Commit(ctx); errors.Is(err, store.ErrDigestMismatch) {
		return invalid("blob %s does not match its digest: the bundle was changed or damaged; nothing was imported", d)
	} else if err != nil {
		return err
	}
	im.carried[d] = true
	im.res.Blobs++
	im.res.Bytes += size
	return nil
}

// verifyOnly reads a blob the node holds and checks its digest.
func verifyOnly(d string, size int64, r io.Reader) error {
	h := sha256.New()
	if n, err := io.Copy(h, io.LimitReader(r, size)); err != nil || n != size {
		return readFailed(err, "blob %s ends after %d of %d bytes", d, n, size)
	}
	if "sha256:"+hex.EncodeToString(h.Sum(nil)) != d {
		return invalid("blob %s does not match its digest: the bundle was changed or damaged; nothing was imported", d)
	}
	return nil
}

// localRepo is the registry's repository of a local name.
func localRepo(name string) registry.Repo {
	return registry.Repo{Name: name, Target: registry.Target{Name: name}}
}

// upload pushes a blob to the first local repository that needs it and
// mounts it into the others; a cached image's copy (bw) is written from
// the same bytes.
func (im *importer) upload(ctx context.Context, d string, size int64, r io.Reader, repos []string, bw *store.BlobWriter) error {
	up, err := im.push.StartUpload(ctx, localRepo(repos[0]))
	if err != nil {
		return err
	}
	var src io.Reader = io.LimitReader(r, size)
	if bw != nil {
		src = io.TeeReader(src, bw)
	}
	n, err := up.Append(ctx, src)
	if err != nil || n != size {
		_ = up.Cancel(ctx)
		return readFailed(err, "blob %s ends after %d of %d bytes", d, n, size)
	}
	if err := up.Commit(ctx, registry.Digest(d)); err != nil {
		_ = up.Cancel(ctx)
		if errors.Is(err, errdefs.ErrDigestInvalid) {
			return invalid("blob %s does not match its digest: the bundle was changed or damaged; nothing was imported", d)
		}
		return err
	}
	if bw != nil {
		if err := bw.Commit(ctx); err != nil {
			return err
		}
	}
	for _, repo := range repos[1:] {
		if err := im.push.MountBlob(ctx, localRepo(repo), localRepo(repos[0]), registry.Digest(d)); err != nil {
			return err
		}
	}
	im.carried[d] = true
	im.res.Blobs++
	im.res.Bytes += size
	return nil
}

// stampOf is the time imported tags get: the bundle's.
func (im *importer) stampOf() time.Time {
	if t := im.x.Created(); !t.IsZero() {
		return t
	}
	return im.s.Now()
}
