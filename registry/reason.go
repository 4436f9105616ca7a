package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// docker and skopeo print only the status line of a 5xx answer, never its
// body, so a failure's message also goes in the status line's reason
// phrase: "HTTP/1.1 502 upstream hub failed for tag v1 of team/app and it
// is not cached here: dial tcp 127.0.0.1:1: connect: connection refused".
// net/http cannot set a reason phrase, so such a response is written on
// the hijacked connection, whole, and the connection is closed.

// maxReason bounds the reason phrase, in bytes.
const maxReason = 300

// reasonWriteTimeout bounds writing the small response on the hijacked
// connection (the server's own deadlines no longer apply to it).
const reasonWriteTimeout = 10 * time.Second

// maxDrain is how much of a request body that was not read writeWithReason
// reads to its end before it closes the connection; a longer one is left
// to net/http.
const maxDrain = 64 << 10

// writeWithReason writes a 5xx error response with msg as its reason
// phrase on the hijacked connection. It does so only on HTTP/1.x, only
// before anything of the response was written, and only when the request
// body was read to its end (or has at most maxDrain bytes left, which are
// read), so closing the connection cannot cut a request the client is
// still sending. It reports whether it wrote the response;
// when it did not, nothing was written and the caller writes as usual.
// The response is buffered; w.finish flushes it and closes the connection
// once the request was logged and observed, as net/http would have sent
// it only when the handler returned.
func (w *recorder) writeWithReason(r *http.Request, status int, msg string, body []byte) bool {
	if status < 500 || r.ProtoMajor != 1 || w.status != 0 {
		return false
	}
	reason := Reason(msg)
	if reason == "" || !w.drained(r) {
		return false
	}
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return false // HTTP/2, or a writer that cannot hijack
	}
	w.finish = func() {
		_ = rw.Writer.Flush()
		_ = conn.Close()
	}
	w.status = status
	_ = conn.SetDeadline(time.Now().Add(reasonWriteTimeout))
	proto := "HTTP/1.1"
	if !r.ProtoAtLeast(1, 1) {
		proto = "HTTP/1.0"
	}
	h := w.Header().Clone()
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if err := writeRaw(rw.Writer, proto, status, reason, h); err != nil {
		return true
	}
	if r.Method != http.MethodHead {
		n, _ := rw.Writer.Write(body)
		w.bytes += int64(n)
	}
	return true
}

// drained says whether r's body has been read to its end, reading at most
// maxDrain more bytes of it (within reasonWriteTimeout) to find out. A
// body the client sends only after "100 Continue" is not asked for.
func (w *recorder) drained(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return false
	}
	_ = http.NewResponseController(w.ResponseWriter).SetReadDeadline(time.Now().Add(reasonWriteTimeout))
	n, err := io.CopyN(io.Discard, r.Body, maxDrain+1)
	return errors.Is(err, io.EOF) && n <= maxDrain
}

// done sends what is left of the response once the request was logged
// and observed.
func (w *recorder) done() {
	if w.finish != nil {
		w.finish()
	}
}

func writeRaw(bw *bufio.Writer, proto string, status int, reason string, h http.Header) error {
	if _, err := fmt.Fprintf(bw, "%s %03d %s\r\n", proto, status, reason); err != nil {
		return err
	}
	if err := h.Write(bw); err != nil {
		return err
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// Reason is msg made fit for a status line's reason phrase: printable
// ASCII only (anything else, CR and LF included, becomes a space, and runs
// of spaces one), no user information in URLs (scheme://user:pass@host
// becomes scheme://host), at most maxReason bytes.
func Reason(msg string) string {
	msg = stripUserinfo(msg)
	if len(msg) > 4*maxReason {
		msg = msg[:4*maxReason]
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c <= ' ' || c >= 0x7f {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
	}
	out := b.String()
	if len(out) > maxReason {
		out = out[:maxReason-3] + "..."
	}
	return out
}

// stripUserinfo removes "user:password@" from every URL in s.
func stripUserinfo(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "/?# \t\r\n\"'")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndexByte(s[:end], '@'); at >= 0 {
			s = s[at+1:]
		}
	}
}
