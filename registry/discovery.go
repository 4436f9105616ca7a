package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"berth/internal/oci"
)

// serveCatalog serves GET /v2/_catalog[?n=…&last=…]. The catalog is not
// part of the OCI spec; a backend without a Cataloger answers 405
// UNSUPPORTED, like every other missing ability.
func (s *Server) serveCatalog(w *recorder, r *http.Request) error {
	c, ok := s.manifests.(Cataloger)
	if !ok {
		return ErrUnsupported("this registry does not list its repositories")
	}
	q := r.URL.Query()
	n, err := pageSize(q)
	if err != nil {
		return err
	}
	var page []string
	var more bool
	cursor := "" // the next page's last
	if p, ok := c.(CatalogPager); ok {
		// A page read as such; the guard may leave fewer than n of it,
		// and the next page starts after the last one read.
		repos, m, err := p.CatalogPage(r.Context(), q.Get("last"), n)
		if err != nil {
			return err
		}
		page, more = repos, m
		if len(repos) > 0 {
			cursor = repos[len(repos)-1]
		}
		if f, ok := s.guard.(CatalogFilter); ok {
			page = f.FilterCatalog(r, page)
		}
	} else {
		repos, err := c.Catalog(r.Context())
		if err != nil {
			return err
		}
		if f, ok := s.guard.(CatalogFilter); ok {
			repos = f.FilterCatalog(r, repos)
		}
		page, more = Paginate(repos, n, q.Get("last"))
		if len(page) > 0 {
			cursor = page[len(page)-1]
		}
	}
	if more && cursor != "" {
		next := "/v2/_catalog?n=" + strconv.Itoa(n) + "&last=" + cursor
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	if page == nil {
		page = []string{}
	}
	body, _ := json.Marshal(struct {
		Repositories []string `json:"repositories"`
	}{page})
	return writeJSON(w, r, "application/json", body)
}

// serveTags serves GET /v2/<name>/tags/list[?n=…&last=…].
func (s *Server) serveTags(w *recorder, r *http.Request, rt Route) error {
	if s.tags == nil {
		return ErrNameUnknown(rt.Repo.Name)
	}
	q := r.URL.Query()
	n, err := pageSize(q)
	if err != nil {
		return err
	}
	last := q.Get("last")
	var page []string
	var more bool
	if p, ok := s.tags.(TagPager); ok {
		tags, m, err := p.ListTagsPage(r.Context(), rt.Repo, last, n)
		if err != nil {
			return err
		}
		page, more = tags, m
	} else {
		tags, err := s.tags.ListTags(r.Context(), rt.Repo)
		if err != nil {
			return err
		}
		page, more = Paginate(tags, n, last)
	}
	if more && len(page) > 0 {
		next := "/v2/" + rt.Repo.Name + "/tags/list?n=" + strconv.Itoa(n) + "&last=" + page[len(page)-1]
		if rt.Repo.NS != "" {
			next += "&ns=" + rt.Repo.NS
		}
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	if page == nil {
		page = []string{}
	}
	body, _ := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Repo.Name, page})
	return writeJSON(w, r, "application/json", body)
}

// Paginate applies the spec's n and last to a sorted list. n < 0 means no
// limit. more reports whether entries remain after the page.
func Paginate(all []string, n int, last string) (page []string, more bool) {
	i := 0
	if last != "" {
		i = sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
	}
	page = all[i:]
	if n >= 0 && len(page) > n {
		return page[:n], true
	}
	if page == nil {
		page = []string{}
	}
	return page, false
}

// MaxPageSize is the most entries one _catalog or tags/list answer holds.
// A request without n, or with a larger one, gets a page of this many and
// a Link header to the next: a listing request never reads a whole store
// (or a repository of a million tags), however it is asked. Clients that
// list (crane, skopeo, oras) follow the Link header.
const MaxPageSize = 1000

// pageSize is a listing's n: MaxPageSize when the query has none or asks
// for more.
func pageSize(q url.Values) (int, error) {
	v := q.Get("n")
	if v == "" {
		return MaxPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, Errorf(http.StatusBadRequest, CodeUnsupported, "invalid n %s", quoteTrunc(v))
	}
	return min(n, MaxPageSize), nil
}

// serveReferrers serves GET /v2/<name>/referrers/<digest>[?artifactType=…].
// A backend without a ReferrersLister answers 405 UNSUPPORTED.
func (s *Server) serveReferrers(w *recorder, r *http.Request, rt Route) error {
	l, ok := s.manifests.(ReferrersLister)
	if !ok {
		return ErrUnsupported("this registry does not serve the referrers API")
	}
	descs, err := l.Referrers(r.Context(), rt.Repo, rt.Digest)
	if err != nil {
		// A registry with the referrers API must not answer 404 (clients
		// read it as "no referrers API" and fall back to tag schema): an
		// unknown repository or subject has no referrers.
		if re := asError(err); re.Status != http.StatusNotFound {
			return err
		}
		descs = nil
	}
	list := make([]Descriptor, 0, len(descs))
	if at := r.URL.Query().Get("artifactType"); at != "" {
		for _, d := range descs {
			if d.ArtifactType == at {
				list = append(list, d)
			}
		}
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	} else {
		list = append(list, descs...)
	}
	body, _ := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []Descriptor `json:"manifests"`
	}{2, oci.MediaTypeImageIndex, list})
	return writeJSON(w, r, oci.MediaTypeImageIndex, body)
}

// writeJSON answers 200 with body; HEAD gets the headers only.
func writeJSON(w *recorder, r *http.Request, contentType string, body []byte) error {
	w.source = SourceNone
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}
