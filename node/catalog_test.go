package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// _catalog lists only the repositories the caller may list.
func TestCatalogIsFilteredByList(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
`)
	for _, name := range []string{"private/alpha", "team/beta"} {
		req, _ := http.NewRequest(http.MethodPost, e.admin.URL+"/admin/v1/create-repository", strings.NewReader(`{"repositoryName":"`+name+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if st := e.do(req, nil); st != http.StatusOK {
			t.Fatalf("create-repository %s: %d", name, st)
		}
	}
	e.htpasswd("alice:alice-pw", "bob:bob-pw")
	e.apply(`upstreams: [{name: b, prefix: b, registry: b.example, url: UP_B}]
auth:
  enabled: true
  htpasswd: DIR/htpasswd
  groups: {admins: [alice]}
  authenticated: {local: [pull], catalog: true}
  policies:
    - namespace: "private/*"
      policy: '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"user:bob"},"Action":"ecr:ListImages"}]}'
    - namespace: "*"
      policy: '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"user:alice"},"Action":"ecr:ListImages"}]}'
`)
	catalog := func(user string) []string {
		return catalogPages(t, e, user, "/v2/_catalog")
	}
	if got := catalog("bob:bob-pw"); strings.Join(got, ",") != "private/alpha" {
		t.Errorf("bob's catalog = %v, want [private/alpha]", got)
	}
	if got := catalog("alice:alice-pw"); strings.Join(got, ",") != "private/alpha,team/beta" {
		t.Errorf("alice's catalog = %v, want both", got)
	}
	// Page by page (the store reads each page, then the guard filters
	// it): a page bob may not see is empty but links to the next one.
	for _, user := range []string{"bob:bob-pw", "alice:alice-pw"} {
		all := strings.Join(catalog(user), ",")
		if got := strings.Join(catalogPages(t, e, user, "/v2/_catalog?n=1"), ","); got != all {
			t.Errorf("%s's catalog in pages of 1 = %v, want %v", user, got, all)
		}
	}
}

// catalogPages GETs path as user and every page its Link headers lead to,
// and returns their repositories.
func catalogPages(t *testing.T, e *reloadEnv, user, path string) []string {
	t.Helper()
	name, pw, _ := strings.Cut(user, ":")
	var all []string
	for path != "" {
		req, _ := http.NewRequest(http.MethodGet, e.reg.URL+path, nil)
		req.SetBasicAuth(name, pw)
		resp, err := e.reg.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Repositories []string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET %s as %s: %d %v", path, name, resp.StatusCode, err)
		}
		all = append(all, body.Repositories...)
		path = strings.TrimSuffix(strings.TrimPrefix(resp.Header.Get("Link"), "<"), `>; rel="next"`)
	}
	return all
}
