package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
)

func (s *Server) serveBlob(w *recorder, r *http.Request, rt Route) error {
	head := r.Method == http.MethodHead
	b, err := s.blobs.GetBlob(r.Context(), BlobRequest{Repo: rt.Repo, Digest: rt.Digest, Head: head})
	if err != nil {
		return err
	}
	w.source = b.Source()
	size := b.Size()
	ranges, err := ParseRanges(r.Header.Get("Range"), size)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", blobContentType)
	h.Set("Docker-Content-Digest", rt.Digest.String())
	h.Set("Etag", `"`+rt.Digest.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	if s.shaper != nil && !head && size > 0 {
		pace, release, err := s.shaper.start(r.Context(), ClientKey(r.Context()))
		if err != nil {
			return err
		}
		defer release()
		w.pace = pace
	}
	if len(ranges) > 1 {
		return serveRanges(w, r, b, ranges)
	}
	whole := ByteRange{Start: 0, End: size - 1}
	status := http.StatusOK
	if len(ranges) == 1 {
		whole, status = ranges[0], http.StatusPartialContent
		h.Set("Content-Range", whole.ContentRange(size))
	}
	h.Set("Content-Length", strconv.FormatInt(whole.Len(), 10))
	if head || size == 0 {
		w.WriteHeader(status)
		return nil
	}
	rc, err := b.Open(r.Context(), whole.Start)
	if err != nil {
		return err
	}
	w.WriteHeader(status)
	if err := sendRange(r.Context(), w, rc, whole.Len(), whole.End == size-1); err != nil {
		return fmt.Errorf("blob %s: %w", rt.Digest, err)
	}
	return nil
}

// blobContentType is the Content-Type of every blob Berth serves.
const blobContentType = "application/octet-stream"

// sendRange sends n bytes of rc to w and closes rc; toEnd says they are
// the rest of the blob. A failure part way is errAbort: the headers are
// out, so the client must see a broken stream.
func sendRange(ctx context.Context, w *recorder, rc io.ReadCloser, n int64, toEnd bool) error {
	defer rc.Close()
	var sent int64
	var err error
	f, ok := rc.(*os.File)
	if k, kept := rc.(keepOpen); kept {
		f, ok = k.File, true
	}
	wt, writes := rc.(io.WriterTo)
	switch {
	case ok && w.pace == nil:
		// A stored file: let the kernel copy it (sendfile).
		sent, err = io.Copy(w, io.LimitReader(f, n))
	case writes && toEnd && !ok:
		// A stream that writes itself to its end (an encrypted blob's,
		// which decrypts and hashes ahead in large spans).
		fw := &flushingWriter{ctx: ctx, w: w, left: n}
		_, err = wt.WriteTo(fw)
		sent = n - fw.left
	default:
		sent, err = copyFlushing(ctx, w, rc, n)
	}
	if err != nil || sent != n {
		return fmt.Errorf("sent %d of %d bytes: %w (%v)", sent, n, errAbort, err)
	}
	return nil
}

// copyBufs are the buffers of streams that follow a fill: 64 KiB each, so
// a hundred clients on one cold blob cost a few MiB.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyFlushing copies up to n bytes and flushes after each read, so bytes of
// a blob still being filled reach the client as they arrive.
func copyFlushing(ctx context.Context, w *recorder, src io.Reader, n int64) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	fw := &flushingWriter{ctx: ctx, w: w, left: n}
	for fw.left > 0 {
		if err := ctx.Err(); err != nil {
			return n - fw.left, err
		}
		chunk := buf
		if w.pace != nil {
			chunk = chunk[:shapeChunk]
		}
		if int64(len(chunk)) > fw.left {
			chunk = chunk[:fw.left]
		}
		k, rerr := src.Read(chunk)
		if k > 0 {
			if _, werr := fw.Write(chunk[:k]); werr != nil {
				return n - fw.left, werr
			}
		}
		if rerr == io.EOF {
			if fw.left > 0 {
				return n - fw.left, io.ErrUnexpectedEOF
			}
			return n, nil
		}
		if rerr != nil {
			return n - fw.left, rerr
		}
	}
	return n, nil
}

// flushingWriter is where a blob body goes out: it paces each piece of at
// most shapeChunk bytes when the client's bandwidth is shaped, flushes
// after each write, so bytes reach the client as they are written, stops
// when ctx ends and refuses bytes past the left the response announced.
type flushingWriter struct {
	ctx  context.Context
	w    *recorder
	left int64
}

// errTooLong is a blob body longer than its Content-Length.
var errTooLong = errors.New("blob body is longer than its length")

// ReadFrom sends a file's bytes (an *io.LimitedReader of an *os.File, as a
// fill in progress gives them) with the connection's ReadFrom, so the kernel
// copies them (sendfile), and flushes. A paced client, or another reader,
// goes through Write.
func (f *flushingWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if ok {
		_, ok = lr.R.(*os.File)
	}
	if !ok || f.w.pace != nil {
		return io.Copy(struct{ io.Writer }{f}, src)
	}
	if lr.N > f.left {
		return 0, errTooLong
	}
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := f.w.ReadFrom(lr)
	f.left -= n
	f.w.Flush()
	return n, err
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > f.left {
		return 0, errTooLong
	}
	done := 0
	for done < len(p) {
		if err := f.ctx.Err(); err != nil {
			return done, err
		}
		piece := p[done:]
		if f.w.pace != nil {
			piece = piece[:min(len(piece), shapeChunk)]
			if err := f.w.pace(len(piece)); err != nil {
				return done, err
			}
		}
		k, err := f.w.Write(piece)
		done += k
		f.left -= int64(k)
		if err != nil {
			return done, err
		}
		f.w.Flush()
	}
	return done, nil
}
