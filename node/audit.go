package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"berth/admin"
	"berth/audit"
	"berth/registry"
)

// statusRecorder remembers a response's status.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// audited records one audit event per request of next: action and target
// come from describe, the principal from the request's Basic user (for a
// refused one, the attempted user).
func (n *Node) audited(next http.Handler, describe func(r *http.Request, body []byte) (action, target string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.audit == nil {
			next.ServeHTTP(w, r)
			return
		}
		var body []byte
		if r.Body != nil && r.Method == http.MethodPost {
			// The first MiB names the action; the handler reads it all
			// (an import's bundle is far longer).
			body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		action, target := describe(r, body)
		e := audit.Event{Time: time.Now().UTC(), SourceIP: registry.ClientIP(r), Action: action,
			Target: target, Status: rec.status, Result: "success", Principal: "anonymous"}
		user, _, basic := r.BasicAuth()
		switch {
		case rec.status >= 400:
			e.Result, e.User = "failure", user
			if rec.status == http.StatusUnauthorized {
				e.Result = "UNAUTHORIZED"
			}
		case basic:
			e.Principal = user
		}
		n.audit.Log(e)
	})
}

// tokenAction names a token request: ECR's login.
func tokenAction(r *http.Request, _ []byte) (string, string) {
	return "GetAuthorizationToken", strings.Join(r.URL.Query()["scope"], " ")
}

// adminAction names an admin API request by its verb, in ECR's spelling
// (delete-repository → DeleteRepository), and its target: the repository
// or rule prefix the request names.
func adminAction(r *http.Request, body []byte) (string, string) {
	verb := strings.TrimPrefix(r.URL.Path, admin.Prefix)
	var b strings.Builder
	for _, part := range strings.Split(verb, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	var req struct {
		RepositoryName      string `json:"repositoryName"`
		EcrRepositoryPrefix string `json:"ecrRepositoryPrefix"`
	}
	_ = json.Unmarshal(body, &req)
	target := req.RepositoryName
	if target == "" {
		target = req.EcrRepositoryPrefix
	}
	if target == "" { // import-vulndb names its upload
		target = r.URL.Query().Get(admin.VulnDBSourceParam)
	}
	return b.String(), target
}

// readCloser reads the body's first bytes again, then the rest of it.
type readCloser struct {
	io.Reader
	io.Closer
}
