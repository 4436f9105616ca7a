package node

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// A path that is not in its clean form gets an OCI error naming it, not
// a redirect to another path with an HTML body: the registry API is all
// the listener serves besides /token.
func TestUncleanPathsGetOCIErrors(t *testing.T) {
	e := newReloadEnv(t, `upstreams: [{name: a, prefix: a, registry: a.example, url: UP_A}]
`)
	for path, want := range map[string]struct {
		status int
		code   string
	}{
		"/v2/a/lib/../app/manifests/v1": {http.StatusBadRequest, "NAME_INVALID"},
		"/v2/a/lib//app/manifests/v1":   {http.StatusBadRequest, "NAME_INVALID"},
		"//v2/":                         {http.StatusNotFound, "NAME_UNKNOWN"},
		"/v2/./":                        {http.StatusNotFound, "NAME_UNKNOWN"},
		"/token/":                       {http.StatusNotFound, "NAME_UNKNOWN"},
	} {
		req, err := http.NewRequest(http.MethodGet, e.reg.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Path, req.URL.RawPath = path, ""
		req.URL.Opaque = path // sent as written, not cleaned by the client
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var oe struct{ Errors []struct{ Code string } }
		if resp.StatusCode != want.status || json.Unmarshal(body, &oe) != nil || len(oe.Errors) != 1 || oe.Errors[0].Code != want.code {
			t.Errorf("GET %s: %d %s; want %d %s", path, resp.StatusCode, body, want.status, want.code)
		}
	}
	if st := e.get("/v2/a/lib/app/manifests/v1", ""); st != http.StatusOK {
		t.Errorf("the clean path: %d", st)
	}
}
