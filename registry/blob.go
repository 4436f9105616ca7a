package registry

import (
	"context"
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
	start, end, partial, err := ParseRange(r.Header.Get("Range"), size)
	if err != nil {
		return err
	}
	if !partial {
		start, end = 0, size-1
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", rt.Digest.String())
	h.Set("Etag", `"`+rt.Digest.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	if head || size == 0 {
		w.WriteHeader(status)
		return nil
	}
	rc, err := b.Open(r.Context(), start)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.WriteHeader(status)
	want := end - start + 1
	var n int64
	if f, ok := rc.(*os.File); ok {
		// A stored file: let the kernel copy it (sendfile).
		n, err = io.Copy(w, io.LimitReader(f, want))
	} else {
		n, err = copyFlushing(r.Context(), w, rc, want)
	}
	if err != nil || n != want {
		return fmt.Errorf("blob %s: sent %d of %d bytes: %w (%v)", rt.Digest, n, want, errAbort, err)
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
	var done int64
	for done < n {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		chunk := buf
		if rem := n - done; rem < int64(len(chunk)) {
			chunk = chunk[:rem]
		}
		k, rerr := src.Read(chunk)
		if k > 0 {
			wk, werr := w.Write(chunk[:k])
			done += int64(wk)
			if werr != nil {
				return done, werr
			}
			w.Flush()
		}
		if rerr == io.EOF {
			if done < n {
				return done, io.ErrUnexpectedEOF
			}
			return done, nil
		}
		if rerr != nil {
			return done, rerr
		}
	}
	return done, nil
}
