package security

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"berth/test/testreg"
)

// Rows of the attack suite on who sees what (docs/security.md): stored
// content is answered on a route only when it belongs to that route.

// startVault starts the upstream Berth reaches with credentials. It holds
// an image in team/a; like a registry with accounts (and unlike the
// in-memory registry, which keeps blobs per digest), it knows nothing in
// team/b.
func startVault(t *testing.T) *testreg.Registry {
	t.Helper()
	v := testreg.Start(t)
	v.Push(t, "team/a", "v1", testreg.Image(t, 99, 1500))
	v.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/team/b/") {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}`, http.StatusNotFound)
			return true
		}
		return false
	})
	return v
}

var visibilityAttacks = []attack{
	{
		name:   "manifest-by-digest-across-routes",
		attack: "alice pushes a manifest to private/alice; anyone asks for its digest on cached routes (prefixed and default-routed)",
		safe:   "404 MANIFEST_UNKNOWN on every cached route (the upstream's answer); only private/alice serves it",
		run: func(t *testing.T, tg *target) {
			alice := basic("alice", "alice-pw")
			md, _ := tg.pushSecret(t, alice, "private/alice")
			for _, p := range []string{"/v2/hub/library/anything/manifests/" + md, "/v2/library/anything/manifests/" + md} {
				for _, m := range []string{http.MethodGet, http.MethodHead} {
					if st, _ := tg.do(t, m, p, "", nil); st != http.StatusNotFound {
						t.Errorf("%s %s: %d, want 404", m, p, st)
					}
				}
			}
			if st, _ := tg.do(t, http.MethodGet, "/v2/private/alice/manifests/"+md, alice, nil); st != http.StatusOK {
				t.Errorf("alice reads her own manifest: %d, want 200", st)
			}
		},
	},
	{
		name:   "pushed-blob-probe",
		attack: "anyone asks for the digest of a layer pushed only to private/bob on a cached route (an existence probe)",
		safe:   "404 BLOB_UNKNOWN, as for a digest never stored: no dropped connection, no crash",
		run: func(t *testing.T, tg *target) {
			_, ld := tg.pushSecret(t, basic("bob", "bob-pw"), "private/bob")
			never := "sha256:" + strings.Repeat("0", 64)
			for _, d := range []string{ld, never} {
				for _, m := range []string{http.MethodGet, http.MethodHead} {
					if st, _ := tg.do(t, m, "/v2/hub/library/anything/blobs/"+d, "", nil); st != http.StatusNotFound {
						t.Errorf("%s of %s on a cached route: %d, want 404", m, d, st)
					}
				}
			}
		},
	},
	{
		name:   "credentialed-blob-across-routes",
		attack: "a layer Berth fetched with credentials (vault/team/a) is asked for on another repository of that upstream, on another upstream, in a local repository, and mounted without a readable source",
		safe:   "404 everywhere but vault/team/a; the mounts start an upload session (202) instead of linking the layer",
		run: func(t *testing.T, tg *target) {
			ld := tg.vaultLayer(t)
			if st, _ := tg.do(t, http.MethodGet, "/v2/vault/team/a/blobs/"+ld, "", nil); st != http.StatusOK {
				t.Fatalf("pull through vault/team/a: %d", st)
			}
			alice := basic("alice", "alice-pw")
			for _, p := range []string{"/v2/vault/team/b/blobs/" + ld, "/v2/hub/library/alpine/blobs/" + ld, "/v2/private/alice/blobs/" + ld} {
				if st, _ := tg.do(t, http.MethodGet, p, alice, nil); st != http.StatusNotFound {
					t.Errorf("GET %s: %d, want 404", p, st)
				}
			}
			for _, from := range []string{"", "&from=hub/library/alpine", "&from=private/alice"} {
				st, hdr, _ := tg.send(t, http.MethodPost, "/v2/private/alice/blobs/uploads/?mount="+ld+from, alice, nil)
				if st != http.StatusAccepted {
					t.Errorf("mount of the vault layer with %q: %d, want 202", from, st)
				} else if loc := hdr.Get("Location"); loc != "" {
					tg.do(t, http.MethodDelete, loc, alice, nil) // free alice's session slot
				}
			}
		},
	},
}

// vaultLayer is the digest of the layer of vault's team/a:v1.
func (tg *target) vaultLayer(t *testing.T) string {
	t.Helper()
	layers, err := testreg.Image(t, 99, 1500).Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// pushSecret pushes a small image to repo with auth and returns the
// digests of its manifest and its layer.
func (tg *target) pushSecret(t *testing.T, auth, repo string) (manifest, layer string) {
	t.Helper()
	cfg, lay := []byte(`{"secret":"`+repo+`"}`), []byte("secret layer of "+repo)
	for _, b := range [][]byte{cfg, lay} {
		if st, body := tg.sendBody(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest(b), auth, "", b); st != http.StatusCreated {
			t.Fatalf("blob push to %s: %d %s", repo, st, body)
		}
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest(cfg) + `","size":` + strconv.Itoa(len(cfg)) + `},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digest(lay) + `","size":` + strconv.Itoa(len(lay)) + `}]}`)
	if st, body := tg.sendBody(t, http.MethodPut, "/v2/"+repo+"/manifests/v1", auth, "application/vnd.oci.image.manifest.v1+json", m); st != http.StatusCreated {
		t.Fatalf("manifest push to %s: %d %s", repo, st, body)
	}
	return digest(m), digest(lay)
}

// sendBody is do with a body and its Content-Type.
func (n *node) sendBody(t *testing.T, method, path, auth, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, n.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
