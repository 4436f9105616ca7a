package testreg

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// Transport serves requests to the registry in process, without a network
// connection, whatever host they name. A test run in a testing/synctest
// bubble uses it: a goroutine reading from a socket keeps the bubble's
// clock from moving, one reading from this transport's pipes does not.
//
// The request's context reaches the handler, as a server's would: the
// handler's request ends when the client's context ends or the client
// closes the body.
func (r *Registry) Transport() http.RoundTripper { return pipeTransport{h: http.HandlerFunc(r.serve)} }

type pipeTransport struct{ h http.Handler }

func (p pipeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	pr, pw := io.Pipe()
	// A body cut by the request's end reads as an error, never as EOF,
	// whichever of the handler and this notices the end first.
	ended := func() { pw.CloseWithError(fmt.Errorf("testreg: request ended: %w", ctx.Err())) }
	context.AfterFunc(ctx, ended)
	w := &pipeWriter{header: http.Header{}, body: pw, head: req.Method == http.MethodHead, sent: make(chan struct{})}
	go func() {
		p.h.ServeHTTP(w, serverRequest(ctx, req))
		w.WriteHeader(http.StatusOK)
		if ctx.Err() != nil {
			ended()
		}
		pw.Close()
	}()
	select {
	case <-w.sent:
	case <-req.Context().Done():
		cancel()
		return nil, req.Context().Err()
	}
	resp := &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sentHeader, ContentLength: -1, Request: req,
		Body: &pipeBody{PipeReader: pr, cancel: cancel},
	}
	if n, err := strconv.ParseInt(w.sentHeader.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	return resp, nil
}

// serverRequest is req as a handler sees it, with ctx as its context.
func serverRequest(ctx context.Context, req *http.Request) *http.Request {
	s := req.Clone(ctx)
	s.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	s.RequestURI = req.URL.RequestURI()
	s.Host = req.URL.Host
	s.RemoteAddr = "127.0.0.1:1"
	if s.Body == nil {
		s.Body = http.NoBody
	}
	return s
}

// pipeWriter is the handler's side of a pipeTransport response.
type pipeWriter struct {
	header     http.Header
	sentHeader http.Header
	status     int
	body       *io.PipeWriter
	head       bool
	once       sync.Once
	sent       chan struct{} // closed once the header is sent
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sentHeader = code, w.header.Clone()
		close(w.sent)
	})
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.head {
		return len(b), nil
	}
	return w.body.Write(b)
}

func (w *pipeWriter) Flush() { w.WriteHeader(http.StatusOK) }

// pipeBody is the client's side: closing it ends the handler's request.
type pipeBody struct {
	*io.PipeReader
	cancel func()
}

func (b *pipeBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}
