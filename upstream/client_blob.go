package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// GetBlobRange starts downloading the bytes off..last of a blob (last < 0:
// to the end). A resume that knows the size names the last byte, which
// every registry supports, rather than an open-ended range, which some
// refuse. The body is cut if no byte arrives for the rule's idle timeout;
// there is no total deadline. size is the whole blob's size when known,
// else -1.
func (u *Upstream) GetBlobRange(ctx context.Context, repo, digest string, off, last int64) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	wd := newWatchdog(u.Rule.Timeout, cancel)
	hdr := http.Header{}
	if r := RangeHeader(off, last); r != "" {
		hdr.Set("Range", r)
	}
	resp, err := u.do(ctx, repo, http.MethodGet, u.url(repo, "blobs", digest), hdr)
	if err != nil {
		wd.stop()
		cancel()
		if wd.fired() {
			return nil, -1, fmt.Errorf("upstream %s: %w: %w: no answer for blob %s within %s", u.Rule.Name, ErrUnavailable, ErrTimeout, digest, u.Rule.Timeout)
		}
		return nil, -1, err
	}
	size := resp.ContentLength
	switch {
	case off > 0 && resp.StatusCode == http.StatusPartialContent:
		size = RangeTotal(resp.Header)
	case off > 0:
		resp.Body.Close()
		wd.stop()
		cancel()
		return nil, -1, fmt.Errorf("upstream %s: %w: range request for blob %s answered %d", u.Rule.Name, ErrUnavailable, digest, resp.StatusCode)
	}
	wd.reset(u.Rule.IdleTimeout)
	return &watchedBody{ReadCloser: resp.Body, ctx: ctx, wd: wd, cancel: cancel, u: u}, size, nil
}

// RangeHeader is the Range of a request for the bytes off..last of a blob
// (last < 0: to the end); "" for the whole blob.
func RangeHeader(off, last int64) string {
	switch {
	case off > 0 && last >= off:
		return fmt.Sprintf("bytes=%d-%d", off, last)
	case off > 0:
		return fmt.Sprintf("bytes=%d-", off)
	}
	return ""
}

// RangeTotal is the whole blob's size named by a 206 answer's
// Content-Range, or -1 when it names none.
func RangeTotal(h http.Header) int64 {
	if _, total, ok := strings.Cut(h.Get("Content-Range"), "/"); ok {
		if n, err := strconv.ParseInt(total, 10, 64); err == nil {
			return n
		}
	}
	return -1
}

// HeadBlob returns a blob's size at the upstream.
func (u *Upstream) HeadBlob(ctx context.Context, repo, digest string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, u.Rule.Timeout)
	defer cancel()
	resp, err := u.do(ctx, repo, http.MethodHead, u.url(repo, "blobs", digest), nil)
	if err != nil {
		return -1, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}
