package registry

import (
	"errors"
	"net/http"
)

// Actions a request needs on its repository.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionList   = "list" // the catalog
)

// AccessRequest is what a request asks to do.
type AccessRequest struct {
	Route  Route
	Action string
	// MountFrom is the source repository of a cross-repository mount,
	// which needs pull on it besides push on the target; its Name is empty
	// without one. An unresolvable source has an empty Target.Name.
	MountFrom Repo
}

// Guard authenticates requests and authorizes their action. It returns
// the principal's name ("" for anonymous), or an *Error: 401 UNAUTHORIZED
// with a challenge header for a client that should log in, 403 DENIED for
// one that may not. Optional: without a Guard every request is allowed.
type Guard interface {
	Check(r *http.Request, req AccessRequest) (principal string, err error)
}

// ErrNoMount is what a Guard returns to allow a push whose cross-repository
// mount names a source the client may not read: the Server then ignores
// the mount and answers with an ordinary upload session, as the spec has a
// registry that does not mount do.
var ErrNoMount = errors.New("mount source not readable; uploading instead")

// WithGuard sets the Guard.
func WithGuard(g Guard) Option { return func(s *Server) { s.guard = g } }

// Access says which action a request needs.
func Access(r *http.Request, rt Route) AccessRequest {
	req := AccessRequest{Route: rt, Action: ActionPull}
	switch {
	case rt.Kind == KindBase:
		req.Action = ""
	case rt.Kind == KindCatalog:
		req.Action = ActionList
	case r.Method == http.MethodDelete && rt.Kind != KindBlobUpload:
		req.Action = ActionDelete
	case rt.Kind == KindBlobUpload, r.Method == http.MethodPut, r.Method == http.MethodPost, r.Method == http.MethodPatch:
		req.Action = ActionPush
		if rt.Kind == KindBlobUpload && r.Method == http.MethodPost {
			req.MountFrom = rt.MountFrom
		}
	}
	return req
}

// CatalogFilter is an optional ability of a Guard: it keeps, of the
// repositories a catalog would list, those the request's principal may
// list (the "list" action on each).
type CatalogFilter interface {
	FilterCatalog(r *http.Request, names []string) []string
}
