package registry

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"berth/internal/oci"
)

// putManifest serves PUT /v2/<name>/manifests/<reference>[?tag=…].
// The Server checks only what needs no knowledge of manifests or of the
// repository (tag grammar, size, the digest of a push by digest); the
// backend decides whether the repository takes writes and validates the
// content (empty, not JSON, media type: MANIFEST_INVALID; missing
// references: MANIFEST_BLOB_UNKNOWN).
func (s *Server) putManifest(w *recorder, r *http.Request, rt Route) error {
	p, ok := s.manifests.(ManifestPutter)
	if !ok {
		return methodErr(r)
	}
	var tags []string
	for _, t := range r.URL.Query()["tag"] {
		if !ValidTag(t) {
			return Errorf(http.StatusBadRequest, CodeManifestInvalid, "invalid tag %s", quoteTrunc(t))
		}
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if r.ContentLength > oci.MaxManifestBytes {
		return errManifestTooLarge(r.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, oci.MaxManifestBytes+1))
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeManifestInvalid,
			Message: "reading the manifest failed", Err: err}
	}
	if len(body) > oci.MaxManifestBytes {
		return errManifestTooLarge(-1)
	}
	if rt.Digest != "" && !rt.Digest.Verify(body) {
		return ErrDigestInvalid("the manifest does not match digest " + rt.Digest.String())
	}
	res, err := p.PutManifest(r.Context(), ManifestPut{
		Repo:      rt.Repo,
		Reference: rt.Reference,
		Digest:    rt.Digest,
		Tags:      tags,
		MediaType: contentType(r.Header),
		Body:      body,
	})
	if err != nil {
		return err
	}
	// A push by digest answers with that digest, whatever the backend
	// considers canonical: the spec wants the client's digest back.
	d := rt.Digest
	if d == "" {
		d = res.Digest
	}
	if d == "" {
		d = FromBytes(body)
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.Repo.Name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if res.Subject != "" {
		h.Set("OCI-Subject", res.Subject.String())
	}
	for _, t := range tags {
		h.Add("OCI-Tag", t)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func errManifestTooLarge(n int64) *Error {
	size := "more than " + strconv.Itoa(oci.MaxManifestBytes) + " bytes"
	if n >= 0 {
		size = strconv.FormatInt(n, 10) + " bytes"
	}
	return Errorf(http.StatusRequestEntityTooLarge, CodeManifestInvalid,
		"the manifest is %s; the limit is %d bytes", size, oci.MaxManifestBytes)
}

// contentType is the media type of the Content-Type header, parameters
// dropped (the spec says registries should ignore them).
func contentType(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.TrimSpace(mt)
}

// deleteManifest serves DELETE /v2/<name>/manifests/<reference>: a digest
// deletes the manifest, a tag deletes only the tag.
func (s *Server) deleteManifest(w *recorder, r *http.Request, rt Route) error {
	d, ok := s.manifests.(ManifestDeleter)
	if !ok {
		return methodErr(r)
	}
	if err := d.DeleteManifest(r.Context(), rt.Repo, rt.Reference); err != nil {
		return err
	}
	return writeAccepted(w)
}

// deleteBlob serves DELETE /v2/<name>/blobs/<digest>.
func (s *Server) deleteBlob(w *recorder, r *http.Request, rt Route) error {
	d, ok := s.manifests.(BlobDeleter)
	if !ok {
		return methodErr(r)
	}
	if err := d.DeleteBlob(r.Context(), rt.Repo, rt.Digest); err != nil {
		return err
	}
	return writeAccepted(w)
}

func writeAccepted(w *recorder) error {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
