package node

import (
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
		req, _ := http.NewRequest(http.MethodGet, e.reg.URL+"/v2/_catalog", nil)
		name, pw, _ := strings.Cut(user, ":")
		req.SetBasicAuth(name, pw)
		var body struct{ Repositories []string }
		if st := e.do(req, &body); st != http.StatusOK {
			t.Fatalf("_catalog as %s: %d", name, st)
		}
		return body.Repositories
	}
	if got := catalog("bob:bob-pw"); strings.Join(got, ",") != "private/alpha" {
		t.Errorf("bob's catalog = %v, want [private/alpha]", got)
	}
	if got := catalog("alice:alice-pw"); strings.Join(got, ",") != "private/alpha,team/beta" {
		t.Errorf("alice's catalog = %v, want both", got)
	}
}
