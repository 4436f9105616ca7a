package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"berth/internal/oci"
	"berth/test/testreg"
)

// ctConfig is a valid config descriptor for hand-written manifests.
const ctConfig = `{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,` +
	`"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}`

// ctServeManifests makes reg answer every manifest request with body as
// Content-Type ct.
func ctServeManifests(reg *testreg.Registry, ct, body string) {
	reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
		if testreg.Kind(r.URL.Path) != "manifests" {
			return false
		}
		w.Header().Set("Content-Type", ct)
		io.WriteString(w, body)
		return true
	})
}

// An upstream answer that is not a manifest of an accepted media type is
// refused with ErrInvalidManifest (an ErrUnavailable), naming the upstream
// and the reason; a real manifest and a labelled schema 1 manifest pass.
func TestGetManifestRefusesWhatIsNotAManifest(t *testing.T) {
	reg := testreg.Start(t)
	good := `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageManifest + `","config":` + ctConfig + `,"layers":[]}`
	tests := []struct {
		name, ct, body string
		reason         string // "" passes
	}{
		{name: "an OCI manifest", ct: oci.MediaTypeImageManifest, body: good},
		{name: "an index", ct: oci.MediaTypeImageIndex, body: `{"schemaVersion":2,"manifests":[{"mediaType":"` +
			oci.MediaTypeImageManifest + `","size":7,"digest":"sha256:` + strings.Repeat("ab", 32) + `"}]}`},
		{name: "a labelled schema 1 manifest", ct: oci.MediaTypeDockerSchema1Signed,
			body: `{"schemaVersion":1,"name":"team/app","tag":"v1","fsLayers":[{"blobSum":"sha256:` + strings.Repeat("cd", 32) + `"}]}`},
		{name: "an HTML page", ct: "text/html", body: "<html>internal</html>", reason: `media type "text/html" is not a manifest`},
		{name: "JSON of another service", ct: "application/json", body: `{"token":"t","secret":"instance credentials"}`,
			reason: "schemaVersion must be 2"},
		{name: "not JSON under a manifest type", ct: oci.MediaTypeImageManifest, body: "secret=1", reason: "not valid JSON"},
		{name: "trailing data", ct: oci.MediaTypeImageManifest, body: good + `{}`, reason: "not valid JSON"},
		{name: "schemaVersion 1 under an OCI type", ct: oci.MediaTypeImageManifest,
			body: `{"schemaVersion":1,"config":` + ctConfig + `}`, reason: "schemaVersion must be 2"},
		{name: "mediaType field disagrees", ct: oci.MediaTypeImageIndex, body: good, reason: "does not match the manifest's mediaType"},
		{name: "image manifest without config", ct: oci.MediaTypeDockerManifest, body: `{"schemaVersion":2,"layers":[]}`,
			reason: "needs a config descriptor"},
		{name: "index with layers", ct: oci.MediaTypeImageIndex, body: `{"schemaVersion":2,"manifests":[],"layers":[]}`,
			reason: "an index has no config or layers"},
		{name: "invalid layer digest", ct: oci.MediaTypeImageManifest,
			body:   `{"schemaVersion":2,"config":` + ctConfig + `,"layers":[{"digest":"sha256:../../etc","size":1}]}`,
			reason: "descriptor digest"},
		{name: "negative size", ct: oci.MediaTypeImageManifest, body: strings.Replace(good, `"size":2`, `"size":-2`, 1),
			reason: "negative size"},
		{name: "schema 1 that is not one", ct: oci.MediaTypeDockerSchema1, body: `{"schemaVersion":2}`,
			reason: "schemaVersion 1, not 2"},
		{name: "an artifact manifest type", ct: "application/vnd.oci.artifact.manifest.v1+json", body: good,
			reason: "not a manifest or index type"},
	}
	u := ctUpstream(t, reg.URL, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctServeManifests(reg, tt.ct, tt.body)
			desc, body, err := u.GetManifest(context.Background(), "team/app", "v1")
			if tt.reason == "" {
				if err != nil || string(body) != tt.body || desc.MediaType != tt.ct {
					t.Fatalf("got %+v %q %v, want the %s as it is", desc, body, err, tt.ct)
				}
				return
			}
			if !errors.Is(err, ErrInvalidManifest) || !errors.Is(err, ErrUnavailable) || body != nil {
				t.Fatalf("got %q, %v; want ErrInvalidManifest", body, err)
			}
			if c := Cause(err); !strings.Contains(c, tt.reason) || !strings.Contains(err.Error(), "upstream test") {
				t.Errorf("error %q, cause %q: want the upstream's name and %q", err, c, tt.reason)
			}
		})
	}
}

// The referrers of a digest must be an image index, from the referrers API
// or from the fallback tag.
func TestGetReferrersRefusesWhatIsNotAnIndex(t *testing.T) {
	reg := testreg.Start(t)
	digest := "sha256:" + strings.Repeat("ef", 32)
	manifest := `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageManifest + `","config":` + ctConfig + `}`
	tests := []struct {
		name     string
		api, tag string // the answer of the referrers API, of the fallback tag ("": 404)
		ok       bool
	}{
		{name: "an index from the API", api: oci.EmptyIndex, ok: true},
		{name: "an index from the tag", tag: oci.EmptyIndex, ok: true},
		{name: "HTML from the API", api: "<html></html>"},
		{name: "an image manifest from the API", api: manifest},
		{name: "an image manifest from the tag", tag: manifest},
	}
	u := ctUpstream(t, reg.URL, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.Mutate(func(w http.ResponseWriter, r *http.Request) bool {
				body := tt.api
				if testreg.Kind(r.URL.Path) == "manifests" {
					body = tt.tag
				} else if !strings.Contains(r.URL.Path, "/referrers/") {
					return false
				}
				if body == "" {
					http.NotFound(w, r)
					return true
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, body)
				return true
			})
			body, err := u.GetReferrers(context.Background(), "team/app", digest)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidManifest)) {
				t.Fatalf("got %q, %v; want ok=%v or ErrInvalidManifest", body, err, tt.ok)
			}
		})
	}
}
