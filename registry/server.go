package registry

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Server is the HTTP front of the registry API: it parses paths, enforces
// rate limits, dispatches to the backend's abilities, writes errors and logs
// one line per request.
type Server struct {
	manifests ManifestHandler
	blobs     BlobHandler
	tags      TagLister
	log       *zap.Logger
	limiter   *Limiter
	shaper    *Shaper
	logins    *Logins
	guard     Guard
	resolver  Resolver
	observe   func(RequestInfo)
	// bodyIdle and bodyMinRate pace upload bodies; see bodypace.go.
	bodyIdle    time.Duration
	bodyMinRate int64
}

// RequestInfo describes a finished request, for metrics.
type RequestInfo struct {
	// Method is MethodName of the request's: never a client's own string.
	Method    string
	Kind      Kind
	Repo      Repo
	Reference string // tag or digest of a manifest, digest of a blob
	UploadID  string
	Status    int
	Code      string
	Bytes     int64
	Duration  time.Duration
	Source    Source
	Client    string
	// Principal is the authenticated user, empty for anonymous requests.
	Principal string
	// User is the name a client presented that was not accepted (a
	// failed login); empty otherwise.
	User string
	// Crashed says the backend panicked serving the request.
	Crashed bool
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger for request lines.
func WithLogger(l *zap.Logger) Option { return func(s *Server) { s.log = l } }

// WithLimiter sets the per-client rate limiter. A client that starts being
// refused is logged (once per run of refusals).
func WithLimiter(l *Limiter) Option { return func(s *Server) { s.limiter = l } }

// WithObserver sets a function called once per finished request.
func WithObserver(f func(RequestInfo)) Option { return func(s *Server) { s.observe = f } }

// New returns a Server for backend. backend must serve manifests; blobs and
// tag lists are found by type assertion.
func New(backend ManifestHandler, opts ...Option) *Server {
	s := &Server{manifests: backend, log: zap.NewNop(), bodyIdle: DefaultBodyIdle, bodyMinRate: DefaultBodyMinRate}
	s.blobs, _ = backend.(BlobHandler)
	s.tags, _ = backend.(TagLister)
	s.resolver, _ = backend.(Resolver)
	for _, o := range opts {
		o(s)
	}
	if s.limiter != nil && s.limiter.onLimit == nil {
		log := s.log
		s.limiter.OnLimit(func(key string) { log.Warn("rate limited", zap.String("client", key)) })
	}
	s.logins = NewLogins(s.limiter)
	return s
}

// authorize runs the guard. A request with a password (Basic credentials)
// is admitted by its address, and by its address and user, before the
// guard checks it (see Logins), so a refused client costs no bcrypt. Any
// other failed login spends its address's tokens too, so guessing is rate
// limited like any other request.
func (s *Server) authorize(r *http.Request, route *Route, client string) (string, *http.Request, error) {
	var hold *LoginHold
	if user, _, ok := r.BasicAuth(); ok {
		var err error
		if hold, err = s.logins.Hold(client, user, time.Now()); err != nil {
			return "", r, err
		}
	}
	principal, err := s.guard.Check(r, Access(r, *route))
	if errors.Is(err, ErrNoMount) {
		err, r = nil, withoutMount(r)
		route.MountFrom = Repo{}
	}
	var re *Error
	failed := errors.As(err, &re) && re.Status == http.StatusUnauthorized
	switch {
	case hold != nil && failed:
		hold.Failed(time.Now())
	case hold != nil:
		hold.Succeeded(time.Now())
	case failed && s.limiter != nil:
		if lerr := s.limiter.Admit("ip:"+client, *route, time.Now()); lerr != nil {
			err = lerr
		}
	}
	return principal, r, err
}

// errAbort cuts the response: headers were sent and the body cannot be
// completed, so the client must see a broken stream, not a short blob.
var errAbort = errors.New("stream aborted")

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, bodyIdle: s.bodyIdle, bodyMinRate: s.bodyMinRate}
	defer rec.done()
	client := ClientIP(r)
	var principal string
	route, err := ParseRequest(r)
	if err == nil {
		err = s.resolve(r, &route)
	}
	if err == nil {
		// Keys in canonical form, set directly (Set would check their
		// form again on every request); they go out the same.
		h := rec.Header()
		h["Docker-Distribution-Api-Version"] = []string{"registry/2.0"}
		if route.Repo.NS != "" {
			h["Oci-Namespace"] = []string{route.Repo.NS}
		}
		if s.guard != nil {
			principal, r, err = s.authorize(r, &route, client)
		}
	}
	// Buckets, and upload sessions, are per principal; anonymous clients
	// by address.
	key := clientKey(principal, client)
	r = r.WithContext(WithClientKey(r.Context(), key))
	if err == nil && s.limiter != nil {
		err = s.limiter.Admit(key, route, time.Now())
	}
	crashed := false
	if err == nil {
		crashed, err = s.dispatchSafely(rec, r, route)
	}
	var code string
	aborted := errors.Is(err, errAbort)
	if err != nil && !aborted {
		re := WriteError(rec, r, err)
		code = re.Code
		if re.Status >= 500 {
			s.log.Warn("request failed", zap.String("path", Clip(r.URL.Path)), zap.Error(err))
		}
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	dur := time.Since(start)
	method := MethodName(r.Method)
	if ce := s.log.Check(zap.InfoLevel, "request"); ce != nil { // no fields built when not logged
		ce.Write(
			zap.String("method", method),
			zap.String("path", Clip(r.URL.Path)),
			zap.String("ns", route.Repo.NS),
			zap.Int("status", status),
			zap.String("code", code),
			zap.Int64("bytes", rec.bytes),
			zap.Duration("duration", dur),
			zap.String("source", string(rec.source)),
			zap.String("client", client),
			zap.String("principal", principal),
			zap.Bool("aborted", aborted),
		)
	}
	if s.observe != nil {
		s.observe(RequestInfo{Method: method, Kind: route.Kind, Repo: route.Repo, Reference: route.Reference,
			UploadID: route.UploadID, Status: status, Code: code, Principal: principal, User: presentedUser(r, principal),
			Bytes: rec.bytes, Duration: dur, Source: rec.source, Client: client, Crashed: crashed})
	}
	if aborted {
		panic(http.ErrAbortHandler)
	}
}

// dispatchSafely is dispatch with a backend's panic turned into a 500 for
// this request (or a cut stream once headers were sent) and a logged stack,
// instead of a dropped connection.
func (s *Server) dispatchSafely(w *recorder, r *http.Request, rt Route) (crashed bool, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		s.log.Error("request crashed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Any("panic", p), zap.Stack("stack"))
		crashed = true
		err = &Error{Status: http.StatusInternalServerError, Code: CodeUnknown,
			Message: "the server failed on this request; it was logged, please report it"}
		if w.status != 0 {
			err = errAbort
		}
	}()
	return false, s.dispatch(w, r, rt)
}

// presentedUser is the user name a client presented and that was not
// accepted (a failed login), for the audit log; "" otherwise.
func presentedUser(r *http.Request, principal string) string {
	if principal != "" {
		return ""
	}
	user, _, _ := r.BasicAuth()
	return user
}

// resolve sets the route's targets: its repository's and, for a mount, its
// source's (resolved with the request's ns, as the client named both on
// one registry). This is the one place a request is routed.
func (s *Server) resolve(r *http.Request, rt *Route) error {
	switch rt.Kind {
	case KindBase, KindCatalog:
		return nil
	}
	if r.Method == http.MethodPost && rt.Kind == KindBlobUpload && rt.UploadID == "" {
		q := r.URL.Query()
		if from := q.Get("from"); from != "" && q.Has("mount") {
			if !ValidName(from) {
				return ErrNameInvalid("invalid from repository name " + quoteTrunc(from))
			}
			src := Repo{Name: from, NS: rt.Repo.NS}
			t, err := s.resolveRepo(src)
			if err != nil {
				// An unknown source is no reason to refuse the push: the
				// client uploads instead of mounting.
				t = Target{}
			}
			src.Target = t
			rt.MountFrom = src
		}
	}
	t, err := s.resolveRepo(rt.Repo)
	if err != nil {
		return err
	}
	rt.Repo.Target = t
	return nil
}

func (s *Server) resolveRepo(repo Repo) (Target, error) {
	if s.resolver == nil {
		return Target{Name: repo.Name}, nil
	}
	return s.resolver.Resolve(repo)
}

func (s *Server) dispatch(w *recorder, r *http.Request, rt Route) error {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch rt.Kind {
	case KindBase:
		if !read {
			return methodErr(r)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("{}"))
		}
		return nil
	case KindManifest:
		switch r.Method {
		case http.MethodPut:
			return s.putManifest(w, r, rt)
		case http.MethodDelete:
			return s.deleteManifest(w, r, rt)
		}
		if !read {
			return methodErr(r)
		}
		return s.serveManifest(w, r, rt)
	case KindBlob:
		if r.Method == http.MethodDelete {
			return s.deleteBlob(w, r, rt)
		}
		if !read {
			return methodErr(r)
		}
		if s.blobs == nil {
			return ErrBlobUnknown(rt.Digest.String())
		}
		return s.serveBlob(w, r, rt)
	case KindBlobUpload:
		return s.serveUpload(w, r, rt)
	case KindTags:
		if !read {
			return methodErr(r)
		}
		return s.serveTags(w, r, rt)
	case KindCatalog:
		if !read {
			return methodErr(r)
		}
		return s.serveCatalog(w, r)
	case KindReferrers:
		if !read {
			return methodErr(r)
		}
		return s.serveReferrers(w, r, rt)
	}
	return ErrUnsupported(r.Method + " " + rt.Kind.String() + " is not supported by this registry")
}

func methodErr(r *http.Request) error {
	return ErrUnsupported("method " + r.Method + " is not allowed on " + r.URL.Path)
}

func (s *Server) serveManifest(w *recorder, r *http.Request, rt Route) error {
	m, err := s.manifests.GetManifest(r.Context(), ManifestRequest{
		Repo: rt.Repo, Reference: rt.Reference, Digest: rt.Digest,
		Head: r.Method == http.MethodHead, Accept: ParseAccept(r.Header),
	})
	if err != nil {
		return err
	}
	w.source = m.Source
	// Keys in canonical form, set directly: Set would check each key's
	// form again on every request. The values share one allocation.
	d := m.Digest.String()
	v := []string{m.MediaType, d, `"` + d + `"`, strconv.Itoa(len(m.Body))}
	h := w.Header()
	h["Content-Type"] = v[0:1:1]
	h["Docker-Content-Digest"] = v[1:2:2]
	h["Etag"] = v[2:3:3]
	h["Content-Length"] = v[3:4:4]
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.Body)
	}
	return nil
}

// withoutMount is r without the mount and from parameters.
func withoutMount(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	q := r2.URL.Query()
	q.Del("mount")
	q.Del("from")
	r2.URL.RawQuery = q.Encode()
	return r2
}

// ParseAccept returns the media types listed in the Accept headers.
func ParseAccept(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if mt = strings.TrimSpace(mt); mt != "" {
				out = append(out, mt)
			}
		}
	}
	return out
}

// ClientIP is the address part of the request's remote address.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recorder remembers what was written, for the request log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	source Source
	// bodyIdle and bodyMinRate pace request bodies (bodypace.go).
	bodyIdle    time.Duration
	bodyMinRate int64
	// finish sends a response written on the hijacked connection
	// (reason.go); nil otherwise.
	finish func()
	// pace waits before n more bytes of a blob body go out (shaping.go);
	// nil when the client's bandwidth is not capped.
	pace func(n int) error
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush passes flushes through, so streamed bytes reach the client early.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ReadFrom lets io.Copy reach the connection's ReadFrom, so files are sent
// with sendfile.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}
