package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"berth/test/testreg"
)

// No listing reads a whole store (docs/security.md, "Parsers take any
// input; the whole node holds under load"): a repository of more tags
// than a page holds answers tags/list, asked without n or with a huge
// one, with 1000 tags and a Link to the rest, and the links lead to every
// tag once.
func TestListingsAreBoundedPages(t *testing.T) {
	n := startBerth(t, "rateLimit:\n  disabled: true\n")
	const page, tags = 1000, 1003
	n.push(t, "private/many:t00000", testreg.Image(t, 5, 100))
	accept := http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}}
	st, hdr, body := n.send(t, http.MethodGet, "/v2/private/many/manifests/t00000", "", accept)
	if st != http.StatusOK {
		t.Fatalf("GET the manifest: %d %s", st, body)
	}
	c := &http.Client{}
	for i := 1; i < tags; i++ {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v2/private/many/manifests/t%05d", n.URL, i), bytes.NewReader(body))
		req.Header.Set("Content-Type", hdr.Get("Content-Type"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT tag %d: %d", i, resp.StatusCode)
		}
	}
	list := func(path string) ([]string, string) {
		t.Helper()
		st, hdr, body := n.send(t, http.MethodGet, path, "", nil)
		var l struct{ Tags []string }
		if st != http.StatusOK || json.Unmarshal(body, &l) != nil {
			t.Fatalf("GET %s: %d %s", path, st, body)
		}
		return l.Tags, hdr.Get("Link")
	}
	want := fmt.Sprintf(`</v2/private/many/tags/list?n=%d&last=t%05d>; rel="next"`, page, page-1)
	for _, q := range []string{"", "?n=1000000"} {
		if got, link := list("/v2/private/many/tags/list" + q); len(got) != page || link != want {
			t.Errorf("tags/list%s: %d tags, Link %q; want %d and %q", q, len(got), link, page, want)
		}
	}
	seen, path := map[string]bool{}, "/v2/private/many/tags/list"
	for range 5 {
		got, link := list(path)
		for _, tag := range got {
			if seen[tag] {
				t.Errorf("tag %s listed twice", tag)
			}
			seen[tag] = true
		}
		if link == "" {
			break
		}
		path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
	}
	if len(seen) != tags {
		t.Errorf("following the links listed %d tags, want %d", len(seen), tags)
	}
}
