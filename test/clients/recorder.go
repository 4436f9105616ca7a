package clients

import (
	"net/http"
	"strings"
	"sync"
)

// RecordedRequest is one request seen by a RequestLog.
type RecordedRequest struct {
	Method    string
	Path      string
	RawQuery  string
	UserAgent string
	Header    http.Header
	Status    int
}

// Query returns the value of query parameter key.
func (r RecordedRequest) Query(key string) string {
	for _, kv := range strings.Split(r.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			return v
		}
	}
	return ""
}

// RequestLog records requests passing through Wrap. Safe for concurrent use.
type RequestLog struct {
	mu   sync.Mutex
	reqs []RecordedRequest
}

// Wrap returns h instrumented to record every request (and its status).
func (l *RequestLog) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		l.mu.Lock()
		l.reqs = append(l.reqs, RecordedRequest{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			UserAgent: r.UserAgent(), Header: r.Header.Clone(), Status: sw.status,
		})
		l.mu.Unlock()
	})
}

// Requests returns a copy of everything recorded so far.
func (l *RequestLog) Requests() []RecordedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]RecordedRequest(nil), l.reqs...)
}

// Reset forgets all recorded requests.
func (l *RequestLog) Reset() {
	l.mu.Lock()
	l.reqs = nil
	l.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
