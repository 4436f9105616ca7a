package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"berth/internal/oci"
	"berth/registry"
	"berth/store"
)

// An upstream answer that is not a manifest is never stored or served: the
// client gets 502 naming the upstream and why, by tag and by digest, and
// the store holds nothing under the body's digest.
func TestInvalidManifestFromUpstreamIsNotStored(t *testing.T) {
	e := newEnv(t, envOpts{})
	bad := `{"token":"t","secret":"instance credentials"}`
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
		io.WriteString(w, bad)
		return true
	})
	d := registry.FromBytes([]byte(bad)).String()
	for _, ref := range []string{"v1", d} {
		resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/app/manifests/"+ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, resp, body, http.StatusBadGateway, "UPSTREAM_UNAVAILABLE")
		if !strings.Contains(string(body), "upstream up") || !strings.Contains(string(body), "schemaVersion must be 2") ||
			strings.Contains(string(body), "instance credentials") {
			t.Errorf("GET %s: %s; want the upstream's name and the reason, and none of the body", ref, body)
		}
	}
	if _, err := e.store.GetManifest(t.Context(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("store.GetManifest(%s) = %v; want nothing stored", d, err)
	}
	if _, err := e.store.GetTag(t.Context(), "up", "team/app", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tag v1: %v; want nothing stored", err)
	}
}

// A real manifest served for another digest passes the manifest check and
// is refused by the store's digest check, the one place it is made: 502
// saying so, nothing stored.
func TestManifestOfAnotherDigestIsNotStored(t *testing.T) {
	e := newEnv(t, envOpts{})
	d := e.pushImage(t, "team/app", "v1", randomImage(t))
	img := randomImage(t)
	other, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	e.up.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.Header().Set("Content-Type", string(mt))
		w.Write(other)
		return true
	})
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/app/manifests/"+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, body, http.StatusBadGateway, "UPSTREAM_UNAVAILABLE")
	if !strings.Contains(string(body), "does not match its digest") {
		t.Errorf("body %s: want it to say the content does not match its digest", body)
	}
	for _, dg := range []string{d.String(), registry.FromBytes(other).String()} {
		if _, err := e.store.GetManifest(t.Context(), dg); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("store.GetManifest(%s) = %v; want nothing stored", dg, err)
		}
	}
}
