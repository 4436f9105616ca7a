package local_test

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"berth/registry"
	"berth/store"
)

func TestManifestValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	const repo = "val/app"
	base := newImage("base", 2)
	e.push(repo, "base", base)
	// A manifest of another user's repository: an index here may not name
	// it, and the answer must not tell it apart from one never pushed.
	elsewhere := newImage("someone else's", 1)
	e.push("other/secret", "v1", elsewhere)
	missing := newBlob(ociLayer, []byte("never uploaded"))
	small := newBlob(ociLayer, []byte("small enough to inline"))

	tests := []struct {
		name        string
		contentType string
		body        []byte
		wantStatus  int
		wantCode    string
		wantSubject string
	}{
		{name: "valid", contentType: ociManifest, body: base.body, wantStatus: http.StatusCreated},
		{name: "bad JSON", contentType: ociManifest, body: []byte(`{"schemaVersion":2,`), wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "not an object", contentType: ociManifest, body: []byte(`[1,2]`), wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "trailing garbage", contentType: ociManifest, body: append(append([]byte{}, base.body...), "garbage"...), wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "two documents", contentType: ociManifest, body: append(append([]byte{}, base.body...), base.body...), wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "empty body", contentType: ociManifest, body: []byte{}, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "schemaVersion 1", contentType: ociManifest, body: base.withManifest(func(m *manifest) { m.SchemaVersion = 1 }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "schemaVersion missing", contentType: ociManifest, body: base.withManifest(func(m *manifest) { m.SchemaVersion = 0 }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "unknown media type", contentType: "application/vnd.example.manifest+json",
			body: base.withManifest(func(m *manifest) { m.MediaType = "application/vnd.example.manifest+json" }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "no media type anywhere", contentType: "", body: base.withManifest(func(m *manifest) { m.MediaType = "" }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "media type from Content-Type only", contentType: ociManifest, body: base.withManifest(func(m *manifest) { m.MediaType = "" }).body, wantStatus: http.StatusCreated},
		{name: "media type from body only", contentType: "", body: base.body, wantStatus: http.StatusCreated},
		{name: "Content-Type parameters ignored", contentType: ociManifest + "; charset=utf-8", body: base.body, wantStatus: http.StatusCreated},
		{name: "Content-Type differs from mediaType", contentType: "application/vnd.docker.distribution.manifest.v2+json", body: base.body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "index Content-Type for a manifest", contentType: ociIndex, body: base.body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "manifest without config", contentType: ociManifest, body: base.withManifest(func(m *manifest) { m.Config = nil }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "invalid layer digest", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) { m.Layers[0].Digest = "sha256:XYZ" }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "negative size", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) { m.Layers[0].Size = -1 }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "invalid subject digest", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) { m.Subject = &desc{MediaType: ociManifest, Digest: "md5:abc", Size: 1} }).body, wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "missing layer blob", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) { m.Layers = append(m.Layers, missing.desc) }).body, wantStatus: 400, wantCode: registry.CodeManifestBlobUnknown},
		{name: "missing config blob", contentType: ociManifest,
			body: imageOf(newBlob(ociConfig, []byte(`{"missing":true}`)), base.layers...).body, wantStatus: 400, wantCode: registry.CodeManifestBlobUnknown},
		{name: "index with missing child", contentType: ociIndex,
			body:       manifest{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{base.desc(), newImage("never pushed", 1).desc()}}.bytes(),
			wantStatus: 400, wantCode: registry.CodeManifestBlobUnknown},
		{name: "index with a child only in another repository", contentType: ociIndex,
			body:       manifest{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{base.desc(), elsewhere.desc()}}.bytes(),
			wantStatus: 400, wantCode: registry.CodeManifestBlobUnknown},
		{name: "index with present child", contentType: ociIndex,
			body: manifest{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{base.desc()}}.bytes(), wantStatus: http.StatusCreated},
		{name: "index with layers", contentType: ociIndex,
			body:       manifest{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{base.desc()}, Layers: []desc{base.layers[0].desc}}.bytes(),
			wantStatus: 400, wantCode: registry.CodeManifestInvalid},
		{name: "nondistributable layer without its blob", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) {
				m.Layers = append(m.Layers, desc{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
					Digest: missing.desc.Digest, Size: missing.desc.Size, URLs: []string{"https://example.com/layer"}})
			}).body, wantStatus: http.StatusCreated},
		{name: "foreign Docker layer without its blob", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) {
				m.Layers = append(m.Layers, desc{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
					Digest: missing.desc.Digest, Size: missing.desc.Size})
			}).body, wantStatus: http.StatusCreated},
		{name: "inline data that matches", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) {
				d := small.desc
				d.Data = base64.StdEncoding.EncodeToString(small.data)
				m.Layers = append(m.Layers, d)
			}).body, wantStatus: http.StatusCreated},
		{name: "inline data that does not match", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) {
				d := small.desc
				d.Data = base64.StdEncoding.EncodeToString([]byte("something else"))
				m.Layers = append(m.Layers, d)
			}).body, wantStatus: 400, wantCode: registry.CodeManifestBlobUnknown},
		{name: "inline empty config", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) {
				m.ArtifactType = "application/vnd.example.thing"
				m.Config = &desc{MediaType: ociEmpty, Digest: digestOf([]byte("{}")), Size: 2, Data: "e30="}
			}).body, wantStatus: http.StatusCreated},
		{name: "subject that does not exist", contentType: ociManifest,
			body: base.withManifest(func(m *manifest) {
				m.ArtifactType = "application/vnd.example.sbom"
				m.Subject = &desc{MediaType: ociManifest, Digest: digestOf([]byte("no such manifest")), Size: 16}
			}).body, wantStatus: http.StatusCreated, wantSubject: digestOf([]byte("no such manifest"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			dg := digestOf(tt.body)
			resp, body := e.putManifest(repo, dg, tt.contentType, tt.body)
			if tt.wantCode != "" {
				wantError(t, resp, body, tt.wantStatus, tt.wantCode)
				if dg == base.digest {
					return // pushed before, under another Content-Type
				}
				resp, body = e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+dg, nil)
				wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
				return
			}
			wantStatus(t, resp, body, tt.wantStatus)
			if got := resp.Header.Get("Docker-Content-Digest"); got != dg {
				t.Errorf("Docker-Content-Digest %s, want %s", got, dg)
			}
			if got := resp.Header.Get("OCI-Subject"); got != tt.wantSubject {
				t.Errorf("OCI-Subject %q, want %q", got, tt.wantSubject)
			}
			d, got := e.getManifest(repo, dg)
			if d != dg || string(got) != string(tt.body) {
				t.Fatalf("GET by digest: %s, %q; want the pushed bytes", d, got)
			}
		})
	}
}

func TestManifestPushedBySHA512(t *testing.T) {
	e := newEnv(t, envOptions{})
	im := newImage("sha512", 1)
	for _, b := range im.blobs() {
		e.pushBlob("long/digest", b.data)
	}
	sum := sha512.Sum512(im.body)
	d512 := "sha512:" + hex.EncodeToString(sum[:])
	resp, body := e.putManifest("long/digest", d512, ociManifest, im.body)
	wantStatus(t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d512 {
		t.Fatalf("Docker-Content-Digest %s, want %s", got, d512)
	}
	if got := resp.Header.Get("Location"); got != "/v2/long/digest/manifests/"+d512 {
		t.Fatalf("Location %s", got)
	}
	d, got := e.getManifest("long/digest", d512)
	if d != d512 || string(got) != string(im.body) {
		t.Fatalf("GET by sha512: digest %s and %d bytes, want %s and the pushed bytes", d, len(got), d512)
	}
	resp, body = e.do(http.MethodHead, "/v2/long/digest/manifests/"+d512, nil)
	wantStatus(t, resp, body, http.StatusOK)
	// A body that does not match the sha512 it is pushed under is refused.
	resp, body = e.putManifest("long/digest", d512, ociManifest, newImage("other", 1).body)
	wantError(t, resp, body, http.StatusBadRequest, registry.CodeDigestInvalid)
}

func TestManifestOfAnotherRepositoryIsUnknown(t *testing.T) {
	e := newEnv(t, envOptions{})
	im := newImage("mine", 1)
	e.push("owner/app", "v1", im)
	e.push("other/app", "v1", newImage("theirs", 1))
	for _, ref := range []string{im.digest, "v1"} {
		resp, body := e.do(http.MethodGet, "/v2/other/app/manifests/"+ref, nil)
		if ref == "v1" {
			// other/app has its own v1, which is not im.
			wantStatus(t, resp, body, http.StatusOK)
			if string(body) == string(im.body) {
				t.Fatal("other/app:v1 serves owner/app's manifest")
			}
			continue
		}
		wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
	}
	resp, body := e.do(http.MethodHead, "/v2/other/app/manifests/"+im.digest, nil)
	wantStatus(t, resp, body, http.StatusNotFound)
	resp, body = e.do(http.MethodGet, "/v2/nobody/manifests/"+im.digest, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeNameUnknown)
}

func TestRePushKeepsFirstPushTime(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	im := newImage("again", 1)
	e.push("again", "v1", im)
	first, err := e.store.GetImage(ctx, store.LocalKey("again"), im.digest)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	e.pushManifest("again", "v2", im)
	second, err := e.store.GetImage(ctx, store.LocalKey("again"), im.digest)
	if err != nil {
		t.Fatal(err)
	}
	if !second.PushedAt.Equal(first.PushedAt) {
		t.Fatalf("pushedAt moved from %v to %v on a re-push", first.PushedAt, second.PushedAt)
	}
}

type referrersIndex struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Manifests     []desc `json:"manifests"`
}

func (e *env) referrers(repo, d, query string) (*http.Response, referrersIndex) {
	e.t.Helper()
	resp, body := e.do(http.MethodGet, "/v2/"+repo+"/referrers/"+d+query, nil)
	wantStatus(e.t, resp, body, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != ociIndex {
		e.t.Fatalf("referrers Content-Type %s, want %s", ct, ociIndex)
	}
	var idx referrersIndex
	if err := json.Unmarshal(body, &idx); err != nil {
		e.t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ociIndex || idx.Manifests == nil {
		e.t.Fatalf("referrers response %s is not an OCI index with a manifests list", body)
	}
	return resp, idx
}

func TestReferrers(t *testing.T) {
	e := newEnv(t, envOptions{})
	const repo = "ref/app"
	img := newImage("subject", 2)
	e.push(repo, "v1", img)

	emptyCfg := newBlob(ociEmpty, []byte("{}"))
	artifact := func(name, artifactType string) image {
		return imageOf(emptyCfg, newBlob("application/json", []byte(`{"artifact":"`+name+`"}`))).withManifest(func(m *manifest) {
			m.ArtifactType = artifactType
			s := img.desc()
			m.Subject = &s
			m.Annotations = map[string]string{"org.example.name": name}
		})
	}
	sbom := artifact("sbom", "application/vnd.example.sbom")
	sig := artifact("sig", "application/vnd.example.sig")
	// An image manifest without artifactType: its config's media type is
	// the artifact type.
	plain := imageOf(newBlob("application/vnd.example.config.v1+json", []byte(`{"plain":1}`)),
		newBlob(ociLayer, []byte("plain layer"))).withManifest(func(m *manifest) {
		s := img.desc()
		m.Subject = &s
	})
	for _, a := range []image{sbom, sig, plain} {
		for _, b := range a.blobs() {
			e.pushBlob(repo, b.data)
		}
		resp, body := e.putManifest(repo, a.digest, ociManifest, a.body)
		wantStatus(t, resp, body, http.StatusCreated)
		if got := resp.Header.Get("OCI-Subject"); got != img.digest {
			t.Fatalf("OCI-Subject %q, want %s", got, img.digest)
		}
	}

	want := map[string]desc{
		sbom.digest:  {MediaType: ociManifest, Digest: sbom.digest, Size: int64(len(sbom.body)), ArtifactType: "application/vnd.example.sbom", Annotations: map[string]string{"org.example.name": "sbom"}},
		sig.digest:   {MediaType: ociManifest, Digest: sig.digest, Size: int64(len(sig.body)), ArtifactType: "application/vnd.example.sig", Annotations: map[string]string{"org.example.name": "sig"}},
		plain.digest: {MediaType: ociManifest, Digest: plain.digest, Size: int64(len(plain.body)), ArtifactType: "application/vnd.example.config.v1+json"},
	}
	resp, idx := e.referrers(repo, img.digest, "")
	if h := resp.Header.Get("OCI-Filters-Applied"); h != "" {
		t.Errorf("OCI-Filters-Applied %q without a filter", h)
	}
	if len(idx.Manifests) != len(want) {
		t.Fatalf("%d referrers, want %d: %+v", len(idx.Manifests), len(want), idx.Manifests)
	}
	for _, got := range idx.Manifests {
		w, ok := want[got.Digest]
		if !ok {
			t.Fatalf("unexpected referrer %+v", got)
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Errorf("referrer\n got %s\nwant %s", gj, wj)
		}
	}

	filters := []struct {
		name         string
		artifactType string
		want         []string
	}{
		{name: "sig", artifactType: "application/vnd.example.sig", want: []string{sig.digest}},
		{name: "sbom", artifactType: "application/vnd.example.sbom", want: []string{sbom.digest}},
		{name: "config media type", artifactType: "application/vnd.example.config.v1+json", want: []string{plain.digest}},
		{name: "none match", artifactType: "application/vnd.example.nothing", want: nil},
	}
	for _, f := range filters {
		t.Run(f.name, func(t *testing.T) {
			e := e.with(t)
			resp, idx := e.referrers(repo, img.digest, "?artifactType="+url.QueryEscape(f.artifactType))
			if h := resp.Header.Get("OCI-Filters-Applied"); h != "artifactType" {
				t.Errorf("OCI-Filters-Applied %q, want artifactType", h)
			}
			var got []string
			for _, m := range idx.Manifests {
				got = append(got, m.Digest)
				if m.ArtifactType != f.artifactType {
					t.Errorf("filtered list holds %+v", m)
				}
			}
			if len(got) != len(f.want) || len(got) == 1 && got[0] != f.want[0] {
				t.Fatalf("referrers %v, want %v", got, f.want)
			}
		})
	}

	// Unknown subjects and repositories have no referrers, and still 200.
	if _, idx := e.referrers(repo, digestOf([]byte("nothing")), ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers of an unknown subject: %+v", idx.Manifests)
	}
	if _, idx := e.referrers("no/such/repo", img.digest, ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers in an unknown repository: %+v", idx.Manifests)
	}
	// Referrers are per repository.
	e.push("ref/other", "v1", img)
	if _, idx := e.referrers("ref/other", img.digest, ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers leak across repositories: %+v", idx.Manifests)
	}
}
