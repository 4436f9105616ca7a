package registry

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// ConnLimits caps the connections a listener holds: in all, and from one
// address (the TCP peer's). Zero is no cap.
type ConnLimits struct {
	Max, PerAddress int
}

// Refusal reasons, as ConnListener's OnRefuse reports them.
const (
	RefusedPerAddress = "per-address"
	RefusedMax        = "max"
)

// refusing bounds the refused connections being answered at once; past
// it, a refused connection is closed without an answer.
const refusing = 64

// refuseWithin is how long a refused connection may take to get its
// answer (a TLS handshake included) before it is closed.
const refuseWithin = 2 * time.Second

// ConnListener is a listener that holds at most its limits' connections.
// A connection past a limit is answered TOOMANYREQUESTS, with status 429
// when its address holds too many and 503 when the listener is full, and a
// message saying which and what to do, then closed, before any request of
// it is read: an idle connection costs a goroutine and buffers (about
// 20 KB), and anyone who reaches the listener may open them.
type ConnListener struct {
	net.Listener
	// Limits returns the limits in force; read on every accept.
	Limits func() ConnLimits
	// TLS, when set, is the listener's TLS config (the listener itself
	// is the TCP one under TLS): refusals are answered over TLS.
	TLS *tls.Config
	// OnRefuse, when set, is told of each refusal and its reason.
	OnRefuse func(addr, reason string)

	mu      sync.Mutex
	total   int
	byAddr  map[string]int
	answers chan struct{}
}

// Accept returns the next connection within the limits; those past them
// are refused and never returned.
func (l *ConnListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := connAddr(c)
		if reason, lim := l.admit(addr); reason != "" {
			l.refuse(c, addr, reason, lim)
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

// Open is how many connections the listener holds.
func (l *ConnListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// admit counts a connection from addr, or says which of the limits in
// force (lim) refuses it.
func (l *ConnListener) admit(addr string) (reason string, lim ConnLimits) {
	lim = l.Limits()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case lim.PerAddress > 0 && l.byAddr[addr] >= lim.PerAddress:
		return RefusedPerAddress, lim
	case lim.Max > 0 && l.total >= lim.Max:
		return RefusedMax, lim
	}
	if l.byAddr == nil {
		l.byAddr = map[string]int{}
	}
	l.byAddr[addr]++
	l.total++
	return "", lim
}

func (l *ConnListener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
}

// refuse answers c with the refusal of reason by lim and closes it, in
// the background and within refuseWithin; with refusing answers under way
// it closes c at once.
func (l *ConnListener) refuse(c net.Conn, addr, reason string, lim ConnLimits) {
	if l.OnRefuse != nil {
		l.OnRefuse(addr, reason)
	}
	l.mu.Lock()
	if l.answers == nil {
		l.answers = make(chan struct{}, refusing)
	}
	answers := l.answers
	l.mu.Unlock()
	select {
	case answers <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-answers }()
		answer(c, l.TLS, refusalBytes(reason, lim))
	}()
}

// answer writes resp on c (over TLS when cfg is set), ends its writes and
// reads what the client sent until it closes, so that closing does not
// reset the connection before the client read the answer.
func answer(c net.Conn, cfg *tls.Config, resp []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseWithin))
	w := c
	if cfg != nil {
		w = tls.Server(c, cfg)
	}
	if _, err := w.Write(resp); err != nil {
		return
	}
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(w, 64<<10))
}

// refusalBytes is the HTTP answer to a connection refused for reason.
func refusalBytes(reason string, lim ConnLimits) []byte {
	var err *Error
	if reason == RefusedPerAddress {
		err = Errorf(http.StatusTooManyRequests, CodeTooManyRequests,
			"this address holds %d connections to the registry, its limit (maxConnectionsPerAddress); close idle ones or reuse them, and retry", lim.PerAddress)
		err.RetryAfter = time.Second
	} else {
		err = Errorf(http.StatusServiceUnavailable, CodeTooManyRequests,
			"the registry holds %d connections, its limit (maxConnections); retry shortly", lim.Max)
		err.RetryAfter = time.Second
	}
	w := &bufferedAnswer{h: http.Header{}}
	WriteError(w, &http.Request{Method: http.MethodGet}, err)
	w.h.Set("Connection", "close")
	resp := &http.Response{StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1, Header: w.h,
		ContentLength: int64(w.body.Len()), Body: io.NopCloser(&w.body), Close: true}
	var out bytes.Buffer
	_ = resp.Write(&out)
	return out.Bytes()
}

// bufferedAnswer keeps what WriteError writes.
type bufferedAnswer struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedAnswer) Header() http.Header         { return b.h }
func (b *bufferedAnswer) WriteHeader(status int)      { b.status = status }
func (b *bufferedAnswer) Write(p []byte) (int, error) { return b.body.Write(p) }

// connAddr is c's peer address without its port.
func connAddr(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// countedConn releases its place in the listener's counts once, when it
// is closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// ReadFrom is the TCP connection's: net/http sends a file body with
// sendfile only when its connection is an io.ReaderFrom.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite is the TCP connection's, which net/http uses to end a
// response cleanly before it closes.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
