package registry

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
)

// serveRanges answers a request for several ranges of b with one 206
// multipart/byteranges body: a part per range, each with the blob's
// Content-Type and its Content-Range. Each part of a fill is opened and
// streamed on its own (as the fill reaches the range); every part of a
// stored file is read from the one file opened first (by sendfile), so a
// blob evicted meanwhile, which is unlinked, still reads to the end. No
// blob is held in memory; the body's length is known before the first
// byte is sent.
func serveRanges(w *recorder, r *http.Request, b Blob, ranges []ByteRange) error {
	size := b.Size()
	mw := multipart.NewWriter(w)
	length, err := multipartLength(mw.Boundary(), ranges, size)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "multipart/byteranges; boundary="+mw.Boundary())
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusPartialContent)
		return nil
	}
	// The first part is opened before the status is sent, so a blob that
	// cannot be read is still answered with an error.
	rc, err := b.Open(r.Context(), ranges[0].Start)
	if err != nil {
		return err
	}
	file, _ := rc.(*os.File)
	if file != nil {
		defer file.Close()
		rc = keepOpen{file}
	}
	w.WriteHeader(http.StatusPartialContent)
	for i, rg := range ranges {
		if i > 0 && file != nil {
			_, err = file.Seek(rg.Start, io.SeekStart)
		} else if i > 0 {
			rc, err = b.Open(r.Context(), rg.Start)
		}
		if err != nil {
			return fmt.Errorf("range %d of %d: %w (%v)", i+1, len(ranges), errAbort, err)
		}
		if _, err := mw.CreatePart(partHeader(rg, size)); err != nil {
			rc.Close()
			return fmt.Errorf("range %d of %d: %w (%v)", i+1, len(ranges), errAbort, err)
		}
		// A part's bytes go to w directly (what the part's writer would
		// do too), so a stored file still goes out by sendfile.
		if err := sendRange(r.Context(), w, rc, rg.Len(), rg.End == size-1); err != nil {
			return fmt.Errorf("range %d of %d: %w", i+1, len(ranges), err)
		}
	}
	if err := mw.Close(); err != nil {
		return fmt.Errorf("closing the multipart body: %w (%v)", errAbort, err)
	}
	return nil
}

// keepOpen is a stored file that sendRange reads a part from and leaves
// open for the next part.
type keepOpen struct{ *os.File }

func (keepOpen) Close() error { return nil }

func partHeader(rg ByteRange, size int64) textproto.MIMEHeader {
	return textproto.MIMEHeader{
		"Content-Type":  {blobContentType},
		"Content-Range": {rg.ContentRange(size)},
	}
}

// multipartLength is the length of the multipart/byteranges body of
// ranges with boundary: the framing written to a counter, plus the bytes.
func multipartLength(boundary string, ranges []ByteRange, size int64) (int64, error) {
	var c countWriter
	mw := multipart.NewWriter(&c)
	if err := mw.SetBoundary(boundary); err != nil {
		return 0, err
	}
	var n int64
	for _, rg := range ranges {
		if _, err := mw.CreatePart(partHeader(rg, size)); err != nil {
			return 0, err
		}
		n += rg.Len()
	}
	if err := mw.Close(); err != nil {
		return 0, err
	}
	return n + int64(c), nil
}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
