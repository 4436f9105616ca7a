package registry

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"berth/internal/oci"
)

// paddedManifest is a valid manifest of exactly n bytes.
func paddedManifest(n int) []byte {
	head := `{"schemaVersion":2,"mediaType":"` + mediaTypeOCIManifest + `","annotations":{"pad":"`
	tail := `"}}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestManifestPut(t *testing.T) {
	t.Parallel()

	configData := []byte(`{"architecture":"amd64","os":"linux"}`)
	layerData := testBytes(100)
	config := Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: FromBytes(configData), Size: int64(len(configData))}
	layer := Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: FromBytes(layerData), Size: int64(len(layerData))}
	image := manifest(config, []Descriptor{layer}, nil, "", nil)
	imageD := FromBytes(image)
	image512 := sha512Of(image)
	subject := Descriptor{MediaType: mediaTypeOCIManifest, Digest: imageD, Size: int64(len(image))}
	missing := Descriptor{MediaType: mediaTypeOCIManifest, Digest: FromBytes([]byte("missing")), Size: 7}
	artifact := manifest(config, nil, &subject, "application/vnd.example.sbom", nil)
	artifactD := FromBytes(artifact)
	orphan := manifest(config, nil, &missing, "application/vnd.example.sbom", nil)
	unknownBlob := manifest(config, []Descriptor{{MediaType: layer.MediaType, Digest: FromBytes([]byte("nope")), Size: 4}}, nil, "", nil)
	largest := paddedManifest(oci.MaxManifestBytes)
	tooLarge := paddedManifest(oci.MaxManifestBytes + 1)
	ct := map[string]string{"Content-Type": mediaTypeOCIManifest}
	created := func(d Digest) map[string]string {
		return map[string]string{"Location": "/v2/a/b/manifests/" + d.String(), "Docker-Content-Digest": d.String(), "Content-Length": "0"}
	}

	tests := []struct {
		name  string
		step  step
		put   *ManifestPut // what the backend must have been given
		after []step
	}{
		{
			name: "by tag",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: image,
				status: 201, headers: created(imageD), absent: []string{"OCI-Subject", "OCI-Tag"}, body2: []byte{}},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: "v1", MediaType: mediaTypeOCIManifest, Body: image},
			after: []step{
				{name: "get by tag", method: http.MethodGet, path: "/v2/a/b/manifests/v1", status: 200, body2: image,
					headers: map[string]string{"Content-Type": mediaTypeOCIManifest, "Docker-Content-Digest": imageD.String()}},
				{name: "get location", method: http.MethodGet, path: "/v2/a/b/manifests/" + imageD.String(), status: 200, body2: image},
			},
		},
		{
			name: "by digest",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String(), header: ct, body: image,
				status: 201, headers: created(imageD)},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: imageD.String(), Digest: imageD, MediaType: mediaTypeOCIManifest, Body: image},
			after: []step{
				{name: "get", method: http.MethodGet, path: "/v2/a/b/manifests/" + imageD.String(), status: 200, body2: image},
			},
		},
		{
			name: "by sha512 digest",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + image512.String(), header: ct, body: image,
				status: 201, headers: created(image512)},
			after: []step{
				{name: "get", method: http.MethodGet, path: "/v2/a/b/manifests/" + image512.String(), status: 200, body2: image},
			},
		},
		{
			name: "with ns",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1?ns=docker.io", header: ct, body: image,
				status: 201, headers: created(imageD)},
			put: &ManifestPut{Repo: Repo{Name: "a/b", NS: "docker.io"}, Reference: "v1", MediaType: mediaTypeOCIManifest, Body: image},
		},
		{
			name: "with subject",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + artifactD.String(), header: ct, body: artifact,
				status: 201, headers: map[string]string{"OCI-Subject": imageD.String(), "Docker-Content-Digest": artifactD.String()}},
		},
		{
			name: "with a missing subject",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/orphan", header: ct, body: orphan,
				status: 201, headers: map[string]string{"OCI-Subject": missing.Digest.String()}},
		},
		{
			name: "tag parameters",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String() + "?tag=v1&tag=latest&tag=v1", header: ct, body: image,
				status: 201, headers: created(imageD), multi: map[string][]string{"OCI-Tag": {"v1", "latest"}}},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: imageD.String(), Digest: imageD, Tags: []string{"v1", "latest"},
				MediaType: mediaTypeOCIManifest, Body: image},
			after: []step{
				{name: "get tag", method: http.MethodGet, path: "/v2/a/b/manifests/latest", status: 200, body2: image},
			},
		},
		{
			name: "invalid tag parameter",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String() + "?tag=-bad", header: ct, body: image,
				status: 400, code: CodeManifestInvalid},
		},
		{
			name: "Content-Type parameters are dropped",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: map[string]string{"Content-Type": mediaTypeOCIManifest + "; charset=utf-8"},
				body: image, status: 201},
			put: &ManifestPut{Repo: Repo{Name: "a/b"}, Reference: "v1", MediaType: mediaTypeOCIManifest, Body: image},
		},
		{
			name: "streamed",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: image, stream: true, status: 201, headers: created(imageD)},
		},
		{
			name: "largest accepted",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/big", header: ct, body: largest, status: 201,
				headers: created(FromBytes(largest))},
		},
		{
			name: "too large",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/big", header: ct, body: tooLarge, status: 413, code: CodeManifestInvalid},
		},
		{
			name: "too large streamed",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/big", header: ct, body: tooLarge, stream: true, status: 413, code: CodeManifestInvalid},
		},
		{
			name: "empty",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, status: 400, code: CodeManifestInvalid},
		},
		{
			name: "not JSON",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: []byte("schemaVersion: 2"), status: 400, code: CodeManifestInvalid},
		},
		{
			name: "digest mismatch",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/" + imageD.String(), header: ct, body: append(slices.Clone(image), ' ', ' '),
				status: 400, code: CodeDigestInvalid},
		},
		{
			name: "malformed digest reference",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/sha256:baddigeststring", header: ct, body: image, status: 400, code: CodeDigestInvalid},
		},
		{
			name: "invalid tag reference",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/-bad", header: ct, body: image, status: 400, code: CodeManifestInvalid},
		},
		{
			name: "backend error: unknown blob",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: unknownBlob, status: 400, code: CodeManifestBlobUnknown},
		},
		{
			name: "backend error: media type mismatch",
			step: step{method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: map[string]string{"Content-Type": mediaTypeOCIIndex},
				body: image, status: 400, code: CodeManifestInvalid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWriteEnv(t)
			e.store.addBlob("a/b", configData)
			e.store.addBlob("a/b", layerData)
			tt.step.name = "put"
			e.run(t, append([]step{tt.step}, tt.after...), nil)
			if tt.put != nil {
				got := e.store.lastPut()
				if !sameRepo(got.Repo, tt.put.Repo) || got.Reference != tt.put.Reference || got.Digest != tt.put.Digest ||
					!slices.Equal(got.Tags, tt.put.Tags) || got.MediaType != tt.put.MediaType || !bytes.Equal(got.Body, tt.put.Body) {
					t.Errorf("PutManifest got %+v\nwant %+v", got, *tt.put)
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()

	body := []byte(`{"schemaVersion":2,"mediaType":"` + mediaTypeOCIManifest + `","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` +
		FromBytes([]byte("{}")).String() + `","size":2},"layers":[]}`)
	d := FromBytes(body)
	blobData := []byte("{}")
	blobD := FromBytes(blobData)
	ct := map[string]string{"Content-Type": mediaTypeOCIManifest}
	push := []step{
		{name: "push blob", method: http.MethodPost, path: "/v2/a/b/blobs/uploads/?digest=" + blobD.String(), body: blobData, status: 201},
		{name: "push manifest", method: http.MethodPut, path: "/v2/a/b/manifests/v1", header: ct, body: body, status: 201},
		{name: "push tag", method: http.MethodPut, path: "/v2/a/b/manifests/v2", header: ct, body: body, status: 201},
	}

	tests := []struct {
		name  string
		steps []step
	}{
		{name: "manifest by digest", steps: []step{
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/manifests/" + d.String(), status: 202,
				headers: map[string]string{"Content-Length": "0"}, body2: []byte{}},
			{name: "get digest", method: http.MethodGet, path: "/v2/a/b/manifests/" + d.String(), status: 404, code: CodeManifestUnknown},
			{name: "head tag", method: http.MethodHead, path: "/v2/a/b/manifests/v1", status: 404, code: CodeManifestUnknown},
			{name: "delete again", method: http.MethodDelete, path: "/v2/a/b/manifests/" + d.String(), status: 404, code: CodeManifestUnknown},
		}},
		{name: "tag", steps: []step{
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/manifests/v1", status: 202},
			{name: "head tag", method: http.MethodHead, path: "/v2/a/b/manifests/v1", status: 404, code: CodeManifestUnknown},
			{name: "other tag stays", method: http.MethodGet, path: "/v2/a/b/manifests/v2", status: 200, body2: body},
			{name: "manifest stays", method: http.MethodGet, path: "/v2/a/b/manifests/" + d.String(), status: 200, body2: body},
			{name: "delete unknown tag", method: http.MethodDelete, path: "/v2/a/b/manifests/v1", status: 404, code: CodeManifestUnknown},
		}},
		{name: "blob", steps: []step{
			{name: "delete", method: http.MethodDelete, path: "/v2/a/b/blobs/" + blobD.String(), status: 202,
				headers: map[string]string{"Content-Length": "0"}, body2: []byte{}},
			{name: "head", method: http.MethodHead, path: "/v2/a/b/blobs/" + blobD.String(), status: 404, code: CodeBlobUnknown},
			{name: "delete again", method: http.MethodDelete, path: "/v2/a/b/blobs/" + blobD.String(), status: 404, code: CodeBlobUnknown},
			{name: "invalid digest", method: http.MethodDelete, path: "/v2/a/b/blobs/sha256:nope", status: 400, code: CodeDigestInvalid},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWriteEnv(t)
			e.run(t, append(slices.Clone(push), tt.steps...), nil)
		})
	}
}
