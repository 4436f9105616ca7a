package local_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"berth/registry"
	"berth/store"
)

func TestDeleteTagKeepsManifest(t *testing.T) {
	e := newEnv(t, envOptions{})
	const repo = "del/tag"
	im := newImage("img", 1)
	e.push(repo, "a", im)
	e.pushManifest(repo, "b", im)

	resp, body := e.do(http.MethodDelete, "/v2/"+repo+"/manifests/a", nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	resp, body = e.do(http.MethodGet, "/v2/"+repo+"/manifests/a", nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
	if d, got := e.getManifest(repo, im.digest); d != im.digest || string(got) != string(im.body) {
		t.Fatalf("manifest by digest after deleting a tag: %s", d)
	}
	if d, _ := e.getManifest(repo, "b"); d != im.digest {
		t.Fatalf("other tag b is %s, want %s", d, im.digest)
	}
	if got := e.tags(repo); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("tags %v, want [b]", got)
	}
	for _, b := range im.blobs() {
		e.wantBlob(repo, b.data)
	}
	// Deleting a tag again, or one that never existed, is unknown.
	for _, tag := range []string{"a", "never"} {
		resp, body = e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+tag, nil)
		wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
	}
}

func TestDeleteManifestByDigest(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	const repo = "del/digest"
	im := newImage("img", 1)
	other := newImage("other", 1)
	e.push(repo, "a", im)
	e.pushManifest(repo, "b", im)
	e.push(repo, "c", other)
	// A signature of im, and im itself as a referrer of other.
	sig := imageOf(newBlob(ociEmpty, []byte("{}")), newBlob("application/octet-stream", []byte("signature"))).withManifest(func(m *manifest) {
		m.ArtifactType = "application/vnd.example.sig"
		s := im.desc()
		m.Subject = &s
	})
	e.push(repo, sig.digest, sig)
	asReferrer := im.withManifest(func(m *manifest) { s := other.desc(); m.Subject = &s })
	e.pushManifest(repo, "d", asReferrer)
	if _, idx := e.referrers(repo, im.digest, ""); len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig.digest {
		t.Fatalf("referrers before delete: %+v", idx.Manifests)
	}
	if _, idx := e.referrers(repo, other.digest, ""); len(idx.Manifests) != 1 {
		t.Fatalf("referrers of other before delete: %+v", idx.Manifests)
	}

	// Deleting the signature removes its referrer entry.
	resp, body := e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+sig.digest, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if _, idx := e.referrers(repo, im.digest, ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers after deleting the referrer: %+v", idx.Manifests)
	}
	resp, body = e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+sig.digest, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)

	// Deleting im by digest removes both of its tags, and nothing else.
	resp, body = e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+im.digest, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	for _, ref := range []string{"a", "b", im.digest} {
		resp, body = e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil)
		wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
		resp, body = e.do(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil)
		wantStatus(t, resp, body, http.StatusNotFound)
	}
	if got := e.tags(repo); !slices.Equal(got, []string{"c", "d"}) {
		t.Fatalf("tags %v, want [c d]", got)
	}
	if d, _ := e.getManifest(repo, "c"); d != other.digest {
		t.Fatalf("c is %s, want %s", d, other.digest)
	}
	if _, err := e.store.GetImage(ctx, store.LocalKey(repo), im.digest); err == nil {
		t.Fatal("image record still there")
	}
	// Deleting asReferrer removes its entry under other.
	resp, body = e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+asReferrer.digest, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if _, idx := e.referrers(repo, other.digest, ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers of other after delete: %+v", idx.Manifests)
	}

	resp, body = e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+im.digest, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)

	// A new push of the same manifest brings it back.
	e.pushManifest(repo, "a", im)
	if d, _ := e.getManifest(repo, "a"); d != im.digest {
		t.Fatalf("a is %s after re-push", d)
	}
}

func TestDeleteManifestInOneRepositoryOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	im := newImage("shared", 1)
	e.push("del/one", "v1", im)
	e.push("del/two", "v1", im)
	resp, body := e.do(http.MethodDelete, "/v2/del/one/manifests/"+im.digest, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if d, _ := e.getManifest("del/two", "v1"); d != im.digest {
		t.Fatalf("del/two:v1 is %s after deleting from del/one", d)
	}
	if d, _ := e.getManifest("del/two", im.digest); d != im.digest {
		t.Fatalf("del/two@digest is %s after deleting from del/one", d)
	}
}

func TestDeleteBlob(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	shared := newBlob(ociLayer, randomBytes("shared layer", 5000))
	one := imageOf(newBlob(ociConfig, []byte(`{"one":1}`)), shared)
	two := imageOf(newBlob(ociConfig, []byte(`{"two":2}`)), shared)
	e.push("blob/one", "v1", one)
	e.push("blob/two", "v1", two)
	d := shared.desc.Digest

	resp, body := e.do(http.MethodDelete, "/v2/blob/one/blobs/"+d, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if got := e.headBlob("blob/one", d); got != http.StatusNotFound {
		t.Fatalf("HEAD in blob/one after delete: %d, want 404", got)
	}
	resp, body = e.do(http.MethodGet, "/v2/blob/one/blobs/"+d, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUnknown)
	resp, body = e.do(http.MethodDelete, "/v2/blob/one/blobs/"+d, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUnknown)
	// The bytes stay: blob/two references them.
	if !e.inStore(d) {
		t.Fatal("the blob left the store")
	}
	e.wantBlob("blob/two", shared.data)
	// A manifest push in blob/one that needs it is refused now.
	three := imageOf(one.config, shared)
	three = three.withManifest(func(m *manifest) { m.Annotations = map[string]string{"n": "3"} })
	resp, body = e.putManifest("blob/one", "v3", ociManifest, three.body)
	wantError(t, resp, body, http.StatusBadRequest, registry.CodeManifestBlobUnknown)

	// Garbage collection keeps it while a manifest references it, even
	// after blob/one's manifest is gone.
	resp, body = e.do(http.MethodDelete, "/v2/blob/one/manifests/"+one.digest, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if _, err := e.reclaim.GC(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if !e.inStore(d) || e.blobFiles(d) != 1 {
		t.Fatal("garbage collection took a blob blob/two references")
	}
	e.wantBlob("blob/two", shared.data)
	if got := e.headBlob("blob/one", d); got != http.StatusNotFound {
		t.Fatalf("HEAD in blob/one after GC: %d, want 404", got)
	}

	// Uploading it again makes it visible again.
	e.pushBlob("blob/one", shared.data)
	if got := e.headBlob("blob/one", d); got != http.StatusOK {
		t.Fatalf("HEAD after re-upload: %d, want 200", got)
	}
	e.wantBlob("blob/one", shared.data)
	e.push("blob/one", "v3", three) // its config went with one's manifest
	if n := e.blobFiles(d); n != 1 {
		t.Fatalf("%d files for the blob, want 1", n)
	}

	// A blob only ever pushed is not mounted anonymously (that would let any
	// digest open another repository's layer): the client gets an upload
	// session instead.
	resp, body = e.do(http.MethodDelete, "/v2/blob/one/blobs/"+d, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	resp, body = e.do(http.MethodPost, "/v2/blob/one/blobs/uploads/?mount="+d, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if got := e.headBlob("blob/one", d); got != http.StatusNotFound {
		t.Fatalf("HEAD after a refused anonymous mount: %d, want 404", got)
	}

	// Mounting it from a repository that holds it makes it visible again.
	for _, from := range []string{"blob/two"} {
		q := "?mount=" + d
		if from != "" {
			q += "&from=" + from
		}
		resp, body = e.do(http.MethodPost, "/v2/blob/one/blobs/uploads/"+q, nil)
		wantStatus(t, resp, body, http.StatusCreated)
		if got := resp.Header.Get("Docker-Content-Digest"); got != d {
			t.Fatalf("mount answered digest %s", got)
		}
		e.wantBlob("blob/one", shared.data)
	}

	// A mount from a repository that deleted the blob is not a mount: the
	// client gets an upload session.
	resp, body = e.do(http.MethodDelete, "/v2/blob/two/blobs/"+d, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	resp, body = e.do(http.MethodPost, "/v2/blob/three/blobs/uploads/?mount="+d+"&from=blob/two", nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	if resp.Header.Get("Location") == "" {
		t.Fatal("no upload session offered")
	}
}
