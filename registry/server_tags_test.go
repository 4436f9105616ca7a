package registry

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestServerTags(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	tests := []struct {
		name   string
		method string
		query  string
		path   string // default: the ubuntu tag list
		status int
		code   string
		tags   []string
		link   string
		ns     string
	}{
		{name: "all", query: "", status: 200, tags: []string{"a", "b", "c", "d", "e"}},
		{name: "first page", query: "?n=2", status: 200, tags: []string{"a", "b"},
			link: `</v2/library/ubuntu/tags/list?n=2&last=b>; rel="next"`},
		{name: "second page", query: "?n=2&last=b", status: 200, tags: []string{"c", "d"},
			link: `</v2/library/ubuntu/tags/list?n=2&last=d>; rel="next"`},
		{name: "last page", query: "?n=2&last=d", status: 200, tags: []string{"e"}},
		{name: "exact last page", query: "?n=5", status: 200, tags: []string{"a", "b", "c", "d", "e"}},
		{name: "last between tags", query: "?n=2&last=bb", status: 200, tags: []string{"c", "d"},
			link: `</v2/library/ubuntu/tags/list?n=2&last=d>; rel="next"`},
		{name: "last before all", query: "?last=0", status: 200, tags: []string{"a", "b", "c", "d", "e"}},
		{name: "last after all", query: "?n=2&last=z", status: 200, tags: []string{}},
		{name: "last without n", query: "?last=c", status: 200, tags: []string{"d", "e"}},
		{name: "n zero", query: "?n=0", status: 200, tags: []string{}},
		{name: "with ns", query: "?n=1&ns=docker.io", status: 200, tags: []string{"a"}, ns: "docker.io",
			link: `</v2/library/ubuntu/tags/list?n=1&last=a&ns=docker.io>; rel="next"`},
		{name: "HEAD", method: http.MethodHead, query: "?n=1", status: 200,
			link: `</v2/library/ubuntu/tags/list?n=1&last=a>; rel="next"`},
		{name: "bad n", query: "?n=x", status: 400, code: CodeUnsupported},
		{name: "negative n", query: "?n=-1", status: 400, code: CodeUnsupported},
		{name: "unknown repository", path: "/v2/library/debian/tags/list", status: 404, code: CodeNameUnknown},
		{name: "invalid name", path: "/v2/library/Debian/tags/list", status: 400, code: CodeNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			path := tt.path
			if path == "" {
				path = "/v2/library/ubuntu/tags/list"
			}
			resp, body := tr.do(t, method, path+tt.query, nil)
			if tt.code != "" {
				checkErrorBody(t, method, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			if link := resp.Header.Get("Link"); link != tt.link {
				t.Errorf("Link = %q, want %q", link, tt.link)
			}
			if ns := resp.Header.Get("OCI-Namespace"); ns != tt.ns {
				t.Errorf("OCI-Namespace = %q, want %q", ns, tt.ns)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD response has a body: %q", body)
				}
				return
			}
			var got struct {
				Name string    `json:"name"`
				Tags *[]string `json:"tags"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if got.Name != "library/ubuntu" {
				t.Errorf("name = %q, want library/ubuntu", got.Name)
			}
			if got.Tags == nil {
				t.Fatalf("tags is null or missing in %s, want a list", body)
			}
			if strings.Join(*got.Tags, ",") != strings.Join(tt.tags, ",") {
				t.Errorf("tags = %q, want %q", *got.Tags, tt.tags)
			}
		})
	}
}

// TestServerTagsFollowLinks walks the pages the way a client does, by the
// Link header, and gets every tag exactly once.
func TestServerTagsFollowLinks(t *testing.T) {
	t.Parallel()
	tr := newTestRegistry(t)

	for _, n := range []int{1, 2, 3, 4, 5, 6} {
		t.Run("n="+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()

			var all []string
			next := "/v2/library/ubuntu/tags/list?n=" + strconv.Itoa(n)
			for pages := 0; next != ""; pages++ {
				if pages > 10 {
					t.Fatal("too many pages")
				}
				resp, body := tr.do(t, http.MethodGet, next, nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: status %d", next, resp.StatusCode)
				}
				var page struct{ Tags []string }
				if err := json.Unmarshal(body, &page); err != nil {
					t.Fatal(err)
				}
				all = append(all, page.Tags...)
				next = ""
				if link := resp.Header.Get("Link"); link != "" {
					u, rel, ok := strings.Cut(link, ">; ")
					if !ok || rel != `rel="next"` || !strings.HasPrefix(u, "<") {
						t.Fatalf("malformed Link %q", link)
					}
					next = u[1:]
				}
			}
			if got := strings.Join(all, ","); got != "a,b,c,d,e" {
				t.Errorf("tags = %s, want a,b,c,d,e", got)
			}
		})
	}
}

func TestPaginate(t *testing.T) {
	t.Parallel()

	all := []string{"a", "b", "c"}
	tests := []struct {
		name string
		all  []string
		n    int
		last string
		want []string
		more bool
	}{
		{name: "no limit", all: all, n: -1, want: []string{"a", "b", "c"}},
		{name: "limit", all: all, n: 2, want: []string{"a", "b"}, more: true},
		{name: "limit equals length", all: all, n: 3, want: []string{"a", "b", "c"}},
		{name: "limit after last", all: all, n: 1, last: "a", want: []string{"b"}, more: true},
		{name: "last is the end", all: all, n: 1, last: "c", want: []string{}},
		{name: "last not present", all: all, n: -1, last: "bb", want: []string{"c"}},
		{name: "zero", all: all, n: 0, want: []string{}, more: true},
		{name: "nil list", all: nil, n: -1, want: []string{}},
		{name: "nil list with last", all: nil, n: 5, last: "x", want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			page, more := Paginate(tt.all, tt.n, tt.last)
			if page == nil {
				t.Error("page is nil, want an empty list")
			}
			if strings.Join(page, ",") != strings.Join(tt.want, ",") || more != tt.more {
				t.Errorf("Paginate = %q, %v; want %q, %v", page, more, tt.want, tt.more)
			}
		})
	}
}
