package registry

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Blob uploads: POST /v2/<name>/blobs/uploads/ starts a session (or pushes
// a blob in one request with ?digest=, or mounts one with ?mount=), PATCH
// appends a chunk, PUT appends the last chunk and commits, GET reports the
// progress and DELETE cancels. Request bodies are streamed to the session,
// never held in memory.

func (s *Server) uploader() Uploader {
	u, _ := s.manifests.(Uploader)
	return u
}

// serveUpload routes the methods of KindBlobUpload.
func (s *Server) serveUpload(w *recorder, r *http.Request, rt Route) error {
	up := s.uploader()
	if up == nil {
		return methodErr(r)
	}
	if rt.UploadID == "" {
		if r.Method != http.MethodPost {
			return methodErr(r)
		}
		return s.startUpload(w, r, rt, up)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.uploadStatus(w, r, rt, up)
	case http.MethodPatch:
		return s.patchUpload(w, r, rt, up)
	case http.MethodPut:
		return s.putUpload(w, r, rt, up)
	case http.MethodDelete:
		return s.cancelUpload(w, r, rt, up)
	}
	return methodErr(r)
}

// startUpload serves POST /v2/<name>/blobs/uploads/[?digest=…|?mount=…&from=…].
func (s *Server) startUpload(w *recorder, r *http.Request, rt Route, up Uploader) error {
	q := r.URL.Query()
	var dgst, mount Digest
	if q.Has("digest") {
		d, err := ParseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		dgst = d
	}
	if q.Has("mount") {
		d, err := ParseDigest(q.Get("mount"))
		if err != nil {
			return err
		}
		mount = d
	}
	if mount != "" {
		// rt.MountFrom has no Name for an anonymous mount.
		if rt.MountFrom.Name != "" && rt.MountFrom.Target.Name == "" {
			mount = "" // a source nothing serves: upload instead
		}
	}
	if mount != "" {
		mounted, err := s.mountBlob(r.Context(), rt, rt.MountFrom, mount)
		if err != nil {
			return err
		}
		if mounted {
			return writeBlobCreated(w, rt, mount)
		}
		// Not mountable: an ordinary session (or a monolithic push when
		// the client also sent ?digest=).
	}

	sess, err := up.StartUpload(r.Context(), rt.Repo)
	if err != nil {
		return err
	}
	if dgst == "" {
		// The body of a plain POST carries nothing the spec defines; it is
		// left unread.
		writeUploadHeaders(w, rt, sess.ID(), 0)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}

	// Monolithic push: the body is the whole blob. On any failure the
	// session, whose Location the client never saw, is discarded.
	err = func() error {
		if r.ContentLength != 0 {
			if err := appendBody(w, r, sess, -1); err != nil {
				return err
			}
		}
		return sess.Commit(r.Context(), dgst)
	}()
	if err != nil {
		_ = sess.Cancel(context.WithoutCancel(r.Context()))
		return err
	}
	return writeBlobCreated(w, rt, dgst)
}

// mountBlob tries to mount d from the repository from (no Name when the
// client named none). mounted is false, with no error, when the Server should fall
// back to an upload session: the backend cannot mount, or it does not know
// the blob or the source repository.
func (s *Server) mountBlob(ctx context.Context, rt Route, from Repo, d Digest) (mounted bool, err error) {
	m, ok := s.manifests.(BlobMounter)
	if !ok {
		return false, nil
	}
	err = m.MountBlob(ctx, rt.Repo, from, d)
	if err == nil {
		return true, nil
	}
	switch asError(err).Code {
	case CodeBlobUnknown, CodeNameUnknown, CodeUnsupported:
		return false, nil
	}
	return false, err
}

// uploadStatus serves GET (and HEAD) /v2/<name>/blobs/uploads/<id>.
func (s *Server) uploadStatus(w *recorder, r *http.Request, rt Route, up Uploader) error {
	sess, err := up.GetUpload(r.Context(), rt.Repo, rt.UploadID)
	if err != nil {
		return err
	}
	writeUploadHeaders(w, rt, sess.ID(), sess.Size())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// patchUpload serves PATCH /v2/<name>/blobs/uploads/<id>: a chunk with a
// Content-Range, or the rest of the blob streamed without one.
func (s *Server) patchUpload(w *recorder, r *http.Request, rt Route, up Uploader) error {
	sess, err := up.GetUpload(r.Context(), rt.Repo, rt.UploadID)
	if err != nil {
		return err
	}
	if err := appendChunk(w, r, rt, sess); err != nil {
		return err
	}
	writeUploadHeaders(w, rt, sess.ID(), sess.Size())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// putUpload serves PUT /v2/<name>/blobs/uploads/<id>?digest=…, with an
// optional last chunk in the body.
func (s *Server) putUpload(w *recorder, r *http.Request, rt Route, up Uploader) error {
	q := r.URL.Query()
	v := q.Get("digest")
	if v == "" {
		return ErrDigestInvalid("the digest parameter is required to close an upload")
	}
	d, err := ParseDigest(v)
	if err != nil {
		return err
	}
	sess, err := up.GetUpload(r.Context(), rt.Repo, rt.UploadID)
	if err != nil {
		return err
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Range") != "" {
		if err := appendChunk(w, r, rt, sess); err != nil {
			return err
		}
	}
	if err := sess.Commit(r.Context(), d); err != nil {
		return err
	}
	return writeBlobCreated(w, rt, d)
}

// cancelUpload serves DELETE /v2/<name>/blobs/uploads/<id>.
func (s *Server) cancelUpload(w *recorder, r *http.Request, rt Route, up Uploader) error {
	sess, err := up.GetUpload(r.Context(), rt.Repo, rt.UploadID)
	if err != nil {
		return err
	}
	if err := sess.Cancel(r.Context()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// appendChunk appends the request body to sess. With a Content-Range the
// chunk must start where the session ends (else 416) and be exactly as long
// as the range says.
func appendChunk(w *recorder, r *http.Request, rt Route, sess Upload) error {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return appendBody(w, r, sess, -1)
	}
	start, end, ok := parseContentRange(cr)
	size := sess.Size()
	if !ok || start != size {
		// Tell the client where the session stands, so it can resume.
		writeUploadHeaders(w, rt, sess.ID(), size)
		return Errorf(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid,
			"content range %s does not continue the upload, which has %d bytes", quoteTrunc(cr), size)
	}
	n := end - start + 1
	if r.ContentLength >= 0 && r.ContentLength != n {
		return Errorf(http.StatusBadRequest, CodeSizeInvalid,
			"content length %d does not match content range %s", r.ContentLength, quoteTrunc(cr))
	}
	return appendBody(w, r, sess, n)
}

// parseContentRange parses the spec's "<start>-<end>" (inclusive). It also
// takes the RFC 9110 forms "bytes <start>-<end>/<total>" and
// "bytes=<start>-<end>" that some clients send.
func parseContentRange(h string) (start, end int64, ok bool) {
	s := strings.TrimSpace(h)
	if rest, found := strings.CutPrefix(s, "bytes"); found {
		s = strings.TrimLeft(rest, " =")
		if i := strings.IndexByte(s, '/'); i >= 0 {
			s = s[:i]
		}
	}
	first, last, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	var err error
	if start, err = parseOffset(first); err != nil {
		return 0, 0, false
	}
	if end, err = parseOffset(last); err != nil {
		return 0, 0, false
	}
	if end < start {
		return 0, 0, false
	}
	return start, end, true
}

// appendBody streams the request body into sess. want >= 0 is the exact
// number of bytes the body must hold. A failure of the client's side (a
// body that ends early, runs long or breaks) is a 400, not a 500.
func appendBody(w *recorder, r *http.Request, sess Upload, want int64) error {
	body := &uploadBody{r: r.Body, want: want, pace: newBodyPace(w, time.Now())}
	_, err := sess.Append(r.Context(), body)
	if body.err != nil {
		return body.err
	}
	if err == nil && want >= 0 && body.n != want {
		// The backend stopped reading before the end of the chunk.
		return Errorf(http.StatusBadRequest, CodeSizeInvalid, "received %d of %d bytes", body.n, want)
	}
	return err
}

// uploadBody reads a request body and remembers why the client's side
// failed, whatever the backend makes of the read error.
type uploadBody struct {
	r    io.Reader
	want int64 // exact length, -1 when unknown
	n    int64
	err  *Error
	pace *bodyPace
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.want >= 0 {
		if rem := b.want - b.n; rem == 0 {
			// Check that nothing follows the declared length.
			var one [1]byte
			k, err := b.r.Read(one[:])
			if k > 0 {
				b.err = Errorf(http.StatusBadRequest, CodeSizeInvalid, "the body is longer than the %d bytes of its content range", b.want)
				return 0, b.err
			}
			if err != nil && err != io.EOF {
				return 0, b.fail(err)
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, nil
		} else if int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	if err := b.pace.before(b.n, time.Now()); err != nil {
		b.err = err
		return 0, err
	}
	k, err := b.r.Read(p)
	b.n += int64(k)
	switch {
	case err != nil && b.pace.expired(err):
		b.err = b.pace.tooSlow()
		return k, b.err
	case err == io.EOF:
		if b.want >= 0 && b.n < b.want {
			b.err = Errorf(http.StatusBadRequest, CodeSizeInvalid, "the body ended after %d of the %d bytes of its content range", b.n, b.want)
			return k, b.err
		}
	case err != nil:
		return k, b.fail(err)
	}
	return k, err
}

func (b *uploadBody) fail(err error) error {
	b.err = &Error{Status: http.StatusBadRequest, Code: CodeBlobUploadInvalid,
		Message: "reading the request body failed", Err: err}
	return b.err
}

// writeUploadHeaders sets the headers of a response about an open session.
func writeUploadHeaders(w *recorder, rt Route, id string, size int64) {
	h := w.Header()
	h.Set("Location", uploadLocation(rt, id))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", uploadRange(size))
}

// writeBlobCreated answers 201 for a blob now in the repository.
func writeBlobCreated(w *recorder, rt Route, d Digest) error {
	h := w.Header()
	h.Set("Location", "/v2/"+rt.Repo.Name+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// uploadLocation is the URL of a session. The ns parameter is left out:
// uploads are stored locally whatever the upstream.
func uploadLocation(rt Route, id string) string {
	return "/v2/" + rt.Repo.Name + "/blobs/uploads/" + id
}

// uploadRange is the Range header of a session holding size bytes:
// "0-<last byte>", and "0-0" when it is empty, as distribution sends it.
func uploadRange(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}
