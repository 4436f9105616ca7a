package upstream

import "context"

// catalogRepo is the key of the catalog's transport among the
// per-repository ones; no repository name can take it.
const catalogRepo = "\x00catalog"

// Catalog lists the repositories of the upstream (/v2/_catalog), following
// pagination. Many public registries do not serve it; their answer is the
// error.
func (u *Upstream) Catalog(ctx context.Context) ([]string, error) {
	var body struct {
		Repositories []string `json:"repositories"`
	}
	return u.paged(ctx, catalogRepo, "/v2/_catalog?n=1000",
		&body, func() []string { r := body.Repositories; body.Repositories = nil; return r })
}
