package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/internal/oci"
)

func TestCatalog(t *testing.T) {
	t.Parallel()

	e := newWriteEnv(t)
	for _, repo := range []string{"d", "a", "b/c", "e"} {
		e.store.addBlob(repo, []byte(repo))
	}
	repos := func(names ...string) []byte {
		b, _ := json.Marshal(map[string][]string{"repositories": append([]string{}, names...)})
		return b
	}
	tests := []struct {
		name string
		step step
	}{
		{name: "all", step: step{method: http.MethodGet, path: "/v2/_catalog", status: 200, body2: repos("a", "b/c", "d", "e"),
			headers: map[string]string{"Content-Type": "application/json"}, absent: []string{"Link"}}},
		{name: "first page", step: step{method: http.MethodGet, path: "/v2/_catalog?n=2", status: 200, body2: repos("a", "b/c"),
			headers: map[string]string{"Link": `</v2/_catalog?n=2&last=b/c>; rel="next"`}}},
		{name: "last page", step: step{method: http.MethodGet, path: "/v2/_catalog?n=2&last=b/c", status: 200, body2: repos("d", "e"),
			absent: []string{"Link"}}},
		{name: "last only", step: step{method: http.MethodGet, path: "/v2/_catalog?last=a", status: 200, body2: repos("b/c", "d", "e")}},
		{name: "last not listed", step: step{method: http.MethodGet, path: "/v2/_catalog?last=c", status: 200, body2: repos("d", "e")}},
		{name: "past the end", step: step{method: http.MethodGet, path: "/v2/_catalog?last=z", status: 200, body2: repos()}},
		{name: "n=0", step: step{method: http.MethodGet, path: "/v2/_catalog?n=0", status: 200, body2: repos(), absent: []string{"Link"}}},
		{name: "n larger than the list", step: step{method: http.MethodGet, path: "/v2/_catalog?n=10", status: 200, body2: repos("a", "b/c", "d", "e"),
			absent: []string{"Link"}}},
		{name: "head", step: step{method: http.MethodHead, path: "/v2/_catalog", status: 200,
			headers: map[string]string{"Content-Length": strconv.Itoa(len(repos("a", "b/c", "d", "e")))}}},
		{name: "negative n", step: step{method: http.MethodGet, path: "/v2/_catalog?n=-1", status: 400, code: CodeUnsupported}},
		{name: "bad n", step: step{method: http.MethodGet, path: "/v2/_catalog?n=x", status: 400, code: CodeUnsupported}},
		{name: "post", step: step{method: http.MethodPost, path: "/v2/_catalog", status: 405, code: CodeUnsupported}},
		{name: "delete", step: step{method: http.MethodDelete, path: "/v2/_catalog", status: 405, code: CodeUnsupported}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.step.name = tt.step.method
			e.run(t, []step{tt.step}, nil)
		})
	}

	t.Run("follow links", func(t *testing.T) {
		t.Parallel()
		var all []string
		path := "/v2/_catalog?n=1"
		for range 10 {
			resp, body := e.send(t, http.MethodGet, path, nil, nil, false)
			var page struct{ Repositories []string }
			if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
			}
			all = append(all, page.Repositories...)
			link := resp.Header.Get("Link")
			if link == "" {
				break
			}
			path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
		}
		if want := []string{"a", "b/c", "d", "e"}; !slices.Equal(all, want) {
			t.Errorf("followed links: %q, want %q", all, want)
		}
	})

	t.Run("empty registry", func(t *testing.T) {
		t.Parallel()
		newWriteEnv(t).run(t, []step{{name: "get", method: http.MethodGet, path: "/v2/_catalog", status: 200, body2: []byte(`{"repositories":[]}`)}}, nil)
	})
}

func TestReferrers(t *testing.T) {
	t.Parallel()

	const (
		sbom    = "application/vnd.example.sbom"
		sig     = "application/vnd.example.sig"
		cfgType = "application/vnd.example.config"
	)
	e := newWriteEnv(t)
	ctx := context.Background()
	configData := []byte("{}")
	e.store.addBlob("a/b", configData)
	emptyConfig := Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: FromBytes(configData), Size: 2}
	customConfig := Descriptor{MediaType: cfgType, Digest: FromBytes(configData), Size: 2}

	subjectBody := manifest(emptyConfig, nil, nil, "", nil)
	subjectD := FromBytes(subjectBody)
	subject := Descriptor{MediaType: mediaTypeOCIManifest, Digest: subjectD, Size: int64(len(subjectBody))}
	put := func(body []byte) Descriptor {
		t.Helper()
		res, err := e.store.PutManifest(ctx, ManifestPut{Repo: Repo{Name: "a/b"}, Reference: FromBytes(body).String(),
			Digest: FromBytes(body), MediaType: mediaTypeOCIManifest, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return Descriptor{MediaType: mediaTypeOCIManifest, Digest: res.Digest, Size: int64(len(body))}
	}
	put(subjectBody)
	sbomD := put(manifest(emptyConfig, nil, &subject, sbom, map[string]string{"org.example": "sbom"}))
	sbomD.ArtifactType, sbomD.Annotations = sbom, map[string]string{"org.example": "sbom"}
	sigD := put(manifest(emptyConfig, nil, &subject, sig, nil))
	sigD.ArtifactType = sig
	cfgD := put(manifest(customConfig, nil, &subject, "", nil))
	cfgD.ArtifactType = cfgType
	all := []Descriptor{sbomD, sigD, cfgD}
	slices.SortFunc(all, func(a, b Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })

	index := func(descs ...Descriptor) func(t *testing.T, resp *http.Response, body []byte) {
		return func(t *testing.T, _ *http.Response, body []byte) {
			t.Helper()
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if string(raw["schemaVersion"]) != "2" || string(raw["mediaType"]) != `"`+oci.MediaTypeImageIndex+`"` {
				t.Errorf("body %s: not an OCI index", body)
			}
			if descs == nil && string(raw["manifests"]) != "[]" {
				t.Errorf("manifests = %s, want []", raw["manifests"])
			}
			var got []Descriptor
			if err := json.Unmarshal(raw["manifests"], &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(descs) {
				t.Fatalf("manifests = %+v, want %+v", got, descs)
			}
			for i := range got {
				g, w := got[i], descs[i]
				if g.MediaType != w.MediaType || g.Digest != w.Digest || g.Size != w.Size || g.ArtifactType != w.ArtifactType ||
					len(g.Annotations) != len(w.Annotations) || g.Annotations["org.example"] != w.Annotations["org.example"] {
					t.Errorf("manifests[%d] = %+v, want %+v", i, g, w)
				}
			}
		}
	}
	ct := map[string]string{"Content-Type": oci.MediaTypeImageIndex}
	filtered := map[string]string{"Content-Type": oci.MediaTypeImageIndex, "OCI-Filters-Applied": "artifactType"}
	base := "/v2/a/b/referrers/" + subjectD.String()

	tests := []struct {
		name string
		step step
	}{
		{name: "all", step: step{method: http.MethodGet, path: base, status: 200, headers: ct, absent: []string{"OCI-Filters-Applied"},
			check: index(all...)}},
		{name: "filtered", step: step{method: http.MethodGet, path: base + "?artifactType=" + sbom, status: 200, headers: filtered,
			check: index(sbomD)}},
		{name: "filtered by config media type", step: step{method: http.MethodGet, path: base + "?artifactType=" + cfgType, status: 200, headers: filtered,
			check: index(cfgD)}},
		{name: "filter matching nothing", step: step{method: http.MethodGet, path: base + "?artifactType=application/none", status: 200, headers: filtered,
			check: index()}},
		{name: "empty filter", step: step{method: http.MethodGet, path: base + "?artifactType=", status: 200, headers: ct, absent: []string{"OCI-Filters-Applied"},
			check: index(all...)}},
		{name: "unknown subject", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/" + FromBytes([]byte("x")).String(), status: 200, headers: ct,
			check: index()}},
		{name: "unknown sha512 subject", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/" + sha512Of([]byte("x")).String(), status: 200,
			check: index()}},
		{name: "unknown repository", step: step{method: http.MethodGet, path: "/v2/nobody/referrers/" + subjectD.String(), status: 200, headers: ct,
			check: index()}},
		{name: "referrer of a referrer", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/" + sbomD.Digest.String(), status: 200,
			check: index()}},
		{name: "head", step: step{method: http.MethodHead, path: base, status: 200, headers: ct}},
		{name: "invalid digest", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/sha256:nope", status: 400, code: CodeDigestInvalid}},
		{name: "tag instead of digest", step: step{method: http.MethodGet, path: "/v2/a/b/referrers/latest", status: 400, code: CodeDigestInvalid}},
		{name: "delete", step: step{method: http.MethodDelete, path: base, status: 405, code: CodeUnsupported}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.step.name = tt.step.method
			e.run(t, []step{tt.step}, nil)
		})
	}

	t.Run("push then list over HTTP", func(t *testing.T) {
		t.Parallel()
		e := newWriteEnv(t)
		e.store.addBlob("x/y", configData)
		ct := map[string]string{"Content-Type": mediaTypeOCIManifest}
		const at = "application/vnd.example.http"
		body := manifest(emptyConfig, nil, &subject, at, map[string]string{"org.example": "http"})
		d := FromBytes(body)
		want := Descriptor{MediaType: mediaTypeOCIManifest, Digest: d, Size: int64(len(body)), ArtifactType: at,
			Annotations: map[string]string{"org.example": "http"}}
		e.run(t, []step{
			{name: "push referrer before its subject", method: http.MethodPut, path: "/v2/x/y/manifests/" + d.String(), header: ct, body: body,
				status: 201, headers: map[string]string{"OCI-Subject": subjectD.String(), "Location": "/v2/x/y/manifests/" + d.String()}},
			{name: "push subject", method: http.MethodPut, path: "/v2/x/y/manifests/v1", header: ct, body: subjectBody,
				status: 201, absent: []string{"OCI-Subject"}},
			{name: "list", method: http.MethodGet, path: "/v2/x/y/referrers/" + subjectD.String(), status: 200, check: index(want)},
			{name: "list filtered", method: http.MethodGet, path: "/v2/x/y/referrers/" + subjectD.String() + "?artifactType=" + at,
				status: 200, headers: map[string]string{"OCI-Filters-Applied": "artifactType"}, check: index(want)},
			{name: "delete referrer", method: http.MethodDelete, path: "/v2/x/y/manifests/" + d.String(), status: 202},
			{name: "list after delete", method: http.MethodGet, path: "/v2/x/y/referrers/" + subjectD.String(), status: 200, check: index()},
		}, nil)
	})
}
