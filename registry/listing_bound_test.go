package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A listing answers at most MaxPageSize entries however it is asked (no
// n, or a larger one), with a Link to the rest, and following the links
// lists everything once.
func TestListingPagesAreBounded(t *testing.T) {
	t.Parallel()
	names := make([]string, MaxPageSize+3)
	for i := range names {
		names[i] = fmt.Sprintf("t%05d", i)
	}
	tr := newTestRegistry(t)
	tr.backend.tags["library/many"] = names

	e := newWriteEnv(t)
	for _, n := range names {
		e.store.addBlob("r/"+n, []byte(n))
	}
	type page struct {
		Repositories []string
		Tags         []string
	}
	get := func(t *testing.T, path string) (page, string) {
		t.Helper()
		var resp *http.Response
		var body []byte
		if strings.HasPrefix(path, "/v2/_catalog") {
			resp, body = e.send(t, http.MethodGet, path, nil, nil, false)
		} else {
			resp, body = tr.do(t, http.MethodGet, path, nil)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return p, resp.Header.Get("Link")
	}
	for _, tt := range []struct{ name, first, list, prefix string }{
		{"catalog", "/v2/_catalog", "/v2/_catalog", "r/"},
		{"tags", "/v2/library/many/tags/list", "/v2/library/many/tags/list", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantLink := fmt.Sprintf(`<%s?n=%d&last=%s%s>; rel="next"`, tt.list, MaxPageSize, tt.prefix, names[MaxPageSize-1])
			for _, q := range []string{"", "?n=5000"} {
				p, link := get(t, tt.first+q)
				if got := len(p.Repositories) + len(p.Tags); got != MaxPageSize || link != wantLink {
					t.Errorf("GET %s%s: %d entries, Link %q; want %d and %q", tt.first, q, got, link, MaxPageSize, wantLink)
				}
			}
			seen, path := 0, tt.first
			for range 5 {
				p, link := get(t, path)
				seen += len(p.Repositories) + len(p.Tags)
				if link == "" {
					break
				}
				path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
			}
			if seen != len(names) {
				t.Errorf("following the links listed %d entries, want %d", seen, len(names))
			}
		})
	}
}
