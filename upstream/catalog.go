package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// catalogRepo is the key of the catalog's transport among the
// per-repository ones; no repository name can take it.
const catalogRepo = "\x00catalog"

// Catalog lists the repositories of the upstream (/v2/_catalog), following
// pagination. Many public registries do not serve it; their answer is the
// error.
func (u *Upstream) Catalog(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*u.Rule.Timeout)
	defer cancel()
	var all []string
	next := fmt.Sprintf("%s://%s/v2/_catalog?n=1000", u.reg.Scheme(), u.reg.RegistryStr())
	for page := 0; next != "" && page < 100; page++ {
		resp, err := u.do(ctx, catalogRepo, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		var body struct {
			Repositories []string `json:"repositories"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return nil, u.classify(err)
		}
		all = append(all, body.Repositories...)
		next = nextLink(resp, next)
	}
	return all, nil
}
