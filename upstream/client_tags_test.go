package upstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"berth/test/testreg"
)

// ctPaginateTags makes the registry answer tag lists two at a time with a
// Link header, relative or absolute.
func ctPaginateTags(t *testing.T, reg *testreg.Registry, absolute bool) {
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || testreg.Kind(r.URL.Path) != "tags" {
			return false
		}
		all := r.Clone(r.Context())
		all.URL.RawQuery = ""
		all.RequestURI = all.URL.RequestURI()
		rec := httptest.NewRecorder()
		reg.Serve(rec, all)
		var list struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
			t.Errorf("tag list: %v", err)
			return false
		}
		tags := list.Tags
		if last := r.URL.Query().Get("last"); last != "" {
			i, _ := slices.BinarySearch(tags, last)
			for i < len(tags) && tags[i] <= last {
				i++
			}
			tags = tags[i:]
		}
		const n = 2
		if len(tags) > n {
			tags = tags[:n]
			next := r.URL.Path + "?" + url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}.Encode()
			if absolute {
				next = "http://" + r.Host + next
			}
			w.Header().Set("Link", "<"+next+`>; rel="next"`)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": list.Name, "tags": tags})
		return true
	})
}

func TestListTagsPagination(t *testing.T) {
	tests := []struct {
		name      string
		tags      []string
		absolute  bool
		wantPages int
	}{
		{name: "relative link, odd count", tags: []string{"v1", "v2", "v3", "v4", "v5"}, wantPages: 3},
		{name: "absolute link, odd count", tags: []string{"v1", "v2", "v3", "v4", "v5"}, absolute: true, wantPages: 3},
		{name: "exact pages", tags: []string{"a", "b", "c", "d"}, wantPages: 2},
		{name: "one page", tags: []string{"latest"}, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testreg.Start(t)
			img := testreg.Image(t, 10, 100)
			for _, tag := range tt.tags {
				reg.Push(t, "team/app", tag, img)
			}
			ctPaginateTags(t, reg, tt.absolute)
			reg.Reset()
			u := ctUpstream(t, reg.URL, nil)
			got, err := u.ListTags(context.Background(), "team/app")
			if err != nil {
				t.Fatalf("ListTags: %v", err)
			}
			if !slices.Equal(got, tt.tags) {
				t.Errorf("ListTags = %q, want %q", got, tt.tags)
			}
			if n := reg.Count("GET tags"); n != tt.wantPages {
				t.Errorf("fetched %d pages, want %d: %q", n, tt.wantPages, reg.Requests())
			}
		})
	}
}

// An upstream whose Link always points back at the first page must not
// keep Berth looping forever.
func TestListTagsPaginationLoopIsBounded(t *testing.T) {
	reg := testreg.Start(t)
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if testreg.Kind(r.URL.Path) != "tags" {
			return false
		}
		w.Header().Set("Link", "<"+r.URL.Path+`>; rel="next"`)
		io.WriteString(w, `{"name":"team/app","tags":["x"]}`)
		return true
	})
	u := ctUpstream(t, reg.URL, nil)
	got, err := u.ListTags(context.Background(), "team/app")
	if err != nil {
		t.Fatalf("ListTags: %v", err)
	}
	if n := reg.Count("GET tags"); n > 100 || len(got) != n {
		t.Errorf("fetched %d pages, %d tags", n, len(got))
	}
}

func TestNextLink(t *testing.T) {
	const cur = "https://r.example/v2/a/tags/list"
	tests := []struct {
		name string
		link string
		want string
	}{
		{name: "none", link: "", want: ""},
		{name: "relative", link: `</v2/a/tags/list?n=2&last=b>; rel="next"`, want: "https://r.example/v2/a/tags/list?n=2&last=b"},
		{name: "absolute", link: `<https://other.example/v2/a/tags/list?last=b>; rel="next"`, want: "https://other.example/v2/a/tags/list?last=b"},
		{name: "not next", link: `</v2/a/tags/list?last=b>; rel="prev"`, want: ""},
		{name: "malformed", link: `>/v2/a<; rel="next"`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}}
			if tt.link != "" {
				resp.Header.Set("Link", tt.link)
			}
			if got := nextLink(resp, cur); got != tt.want {
				t.Errorf("nextLink(%q) = %q, want %q", tt.link, got, tt.want)
			}
		})
	}
}
