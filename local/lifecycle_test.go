package local_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"berth/errdefs"
	"berth/lifecycle"
	"berth/local"
	"berth/reclaim"
	"berth/registry"
	"berth/store"
)

// cacheImage stores an image as the pull-through cache of upstream hub
// would, cached at time at.
func (e *env) cacheImage(name, tag string, im image, at time.Time) {
	e.t.Helper()
	for _, b := range im.blobs() {
		e.cacheBlob(name, b.data)
	}
	bt := e.store.NewBatch()
	defer bt.Close()
	if err := bt.PutManifest(im.digest, &store.Manifest{MediaType: ociManifest, Body: im.body}); err != nil {
		e.t.Fatal(err)
	}
	if err := bt.PutImage(store.CachedKey("hub", name), im.digest, store.Image{PushedAt: at}); err != nil {
		e.t.Fatal(err)
	}
	if err := bt.PutTag("hub", name, tag, store.Tag{Digest: im.digest, FetchedAt: at}); err != nil {
		e.t.Fatal(err)
	}
	if err := bt.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

func TestImagesAndExpire(t *testing.T) {
	e := newEnv(t, envOptions{cachedPrefix: true})
	ctx := context.Background()
	a := newImage("a", 2)
	b := newImage("b", 1)
	e.push("lc/app", "v1", a)
	e.pushManifest("lc/app", "latest", a)
	e.clock.Advance(time.Minute)
	e.push("lc/app", b.digest, b)
	sig := imageOf(newBlob(ociEmpty, []byte("{}")), newBlob("application/octet-stream", []byte("sig of a"))).withManifest(func(m *manifest) {
		m.ArtifactType = "application/vnd.example.sig"
		s := a.desc()
		m.Subject = &s
	})
	e.push("lc/app", sig.digest, sig)

	ir := reclaim.LocalRepo("lc/app")
	imgs, err := e.reclaim.Images(ctx, ir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 {
		t.Fatalf("images %+v", imgs)
	}
	byDigest := map[string]reclaim.ImageInfo{}
	for _, im := range imgs {
		byDigest[im.Digest] = im
	}
	ia := byDigest[a.digest]
	if !slices.Equal(ia.Tags, []string{"latest", "v1"}) || ia.Size != int64(len(a.config.data)+len(a.layers[0].data)+len(a.layers[1].data)) ||
		ia.MediaType != ociManifest || ia.ArtifactType != ociConfig {
		t.Fatalf("image a %+v", ia)
	}
	if is := byDigest[sig.digest]; is.Subject != a.digest || is.ArtifactType != "application/vnd.example.sig" || len(is.Tags) != 0 {
		t.Fatalf("signature %+v", is)
	}
	if imgs[0].Digest != sig.digest && imgs[0].Digest != b.digest {
		t.Fatalf("not newest first: %+v", imgs)
	}

	// A cached image sharing a layer with the local a, and one sharing a
	// layer with another cached image.
	shared := a.layers[0]
	c1 := imageOf(newBlob(ociConfig, []byte(`{"c":1}`)), shared, newBlob(ociLayer, []byte("c1 only")), newBlob(ociLayer, []byte("c1 and c2")))
	c2 := imageOf(newBlob(ociConfig, []byte(`{"c":2}`)), newBlob(ociLayer, []byte("c1 and c2")))
	e.cacheImage("lib/x", "1", c1, e.clock.Now())
	e.cacheImage("lib/x", "2", c2, e.clock.Now())
	cached := reclaim.ImageRepo{Name: "hub/lib/x", Key: store.CachedKey("hub", "lib/x")}
	if imgs, err := e.reclaim.Images(ctx, cached); err != nil || len(imgs) != 2 {
		t.Fatalf("cached images %+v, %v", imgs, err)
	}
	repos, err := e.reclaim.StoreRepositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 || repos[0].Key.Name != "lc/app" || repos[0].Images != 3 || repos[1].Key.Upstream != "hub" || repos[1].Key.Name != "lib/x" || repos[1].Images != 2 {
		t.Fatalf("store repositories %+v", repos)
	}

	rep, err := e.reclaim.ExpireImages(ctx, []reclaim.ImageRef{
		{Repo: ir, Digest: a.digest}, {Repo: cached, Digest: c1.digest},
		{Repo: ir, Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// c1's own config and layer go at once; the layer a holds (linked to
	// lc/app) and the one c2 uses stay.
	if rep.ImagesExpired != 2 || rep.LocalImagesExpired != 1 || rep.BlobsDeleted != 2 || rep.ManifestsDeleted != 1 {
		t.Fatalf("expire report %+v", rep)
	}
	if !e.inStore(shared.desc.Digest) || !e.inStore(c2.layers[0].desc.Digest) || e.inStore(c1.config.desc.Digest) || e.inStore(c1.layers[1].desc.Digest) {
		t.Fatal("wrong cached blobs reclaimed")
	}
	resp, body := e.do(http.MethodGet, "/v2/lc/app/manifests/v1", nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeManifestUnknown)
	if got := e.tags("lc/app"); len(got) != 0 {
		t.Fatalf("tags of lc/app after expiring a: %v", got)
	}
	if _, err := e.store.GetTag(ctx, "hub", "lib/x", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cached tag of c1: %v", err)
	}
	// Garbage collection then takes the local image's blobs.
	e.clock.Advance(2 * time.Hour)
	if _, err := e.reclaim.GC(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if e.inStore(a.layers[1].desc.Digest) || e.inStore(a.config.desc.Digest) {
		t.Fatal("garbage collection left the expired image's blobs")
	}
	// Expiring what is gone does nothing.
	if rep, err := e.reclaim.ExpireImages(ctx, []reclaim.ImageRef{{Repo: ir, Digest: a.digest}, {Repo: cached, Digest: c1.digest}}); err != nil || rep.ImagesExpired != 0 {
		t.Fatalf("again: %+v, %v", rep, err)
	}
}

func TestDeleteRepository(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	a := newImage("a", 1)
	e.push("del/repo", "v1", a)
	sig := imageOf(newBlob(ociEmpty, []byte("{}")), newBlob("application/octet-stream", []byte("sig"))).withManifest(func(m *manifest) {
		s := a.desc()
		m.Subject = &s
	})
	e.push("del/repo", sig.digest, sig)
	e.push("del/repo/sub", "v1", a) // a name extending del/repo
	e.push("del/repox", "v1", a)
	e.createRepo("del/empty", local.Mutable)

	if _, err := e.reclaim.DeleteRepository(ctx, "del/repo", false); !errors.Is(err, reclaim.ErrRepositoryNotEmpty) {
		t.Fatalf("deleting a non-empty repository: %v", err)
	}
	if _, err := e.reclaim.DeleteRepository(ctx, "del/nope", true); !errors.Is(err, errdefs.ErrRepositoryUnknown) {
		t.Fatalf("deleting an unknown repository: %v", err)
	}
	if rec, err := e.reclaim.DeleteRepository(ctx, "del/empty", false); err != nil || rec.Name != "del/empty" {
		t.Fatalf("deleting an empty repository: %+v, %v", rec, err)
	}
	rec, err := e.reclaim.DeleteRepository(ctx, "del/repo", true)
	if err != nil || rec.Name != "del/repo" {
		t.Fatalf("forced delete: %+v, %v", rec, err)
	}
	if _, err := e.repos.Repository(ctx, "del/repo"); !errors.Is(err, errdefs.ErrRepositoryUnknown) {
		t.Fatalf("deleted repository: %v", err)
	}
	if imgs, _ := e.store.ListImages(ctx, store.LocalKey("del/repo")); len(imgs) != 0 {
		t.Fatalf("images left: %v", imgs)
	}
	if tags, _ := e.store.ListTags(ctx, local.NS, "del/repo"); len(tags) != 0 {
		t.Fatalf("tags left: %v", tags)
	}
	if refs, _ := e.store.ListReferrers(ctx, store.LocalKey("del/repo"), a.digest); len(refs) != 0 {
		t.Fatalf("referrers left: %d", len(refs))
	}
	if linked, _, _ := e.store.LinkState(ctx, store.LocalKey("del/repo"), a.config.desc.Digest); linked {
		t.Fatal("links left")
	}
	for _, other := range []string{"del/repo/sub", "del/repox"} {
		if d, _ := e.getManifest(other, "v1"); d != a.digest {
			t.Fatalf("%s lost its image", other)
		}
	}
	names, _ := e.store.ListRepositories(ctx)
	if !slices.Equal(names, []string{"del/repo/sub", "del/repox"}) {
		t.Fatalf("repositories %v", names)
	}
	// The signature's blobs go with garbage collection; a's stay, used
	// by the other repositories.
	e.clock.Advance(2 * time.Hour)
	if _, err := e.reclaim.GC(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if e.inStore(sig.layers[0].desc.Digest) || !e.inStore(a.layers[0].desc.Digest) {
		t.Fatal("garbage collection after the delete")
	}
}

// TestPullTimesForLifecycle: a pull by tag records the image's last pull,
// which lifecycle's sinceImagePulled sees at once (before access times are
// flushed), after a flush, and after a clean restart; an image not pulled
// since its push expires. A pull of a repository that does not exist is
// NAME_UNKNOWN, of a tag or digest a repository does not hold
// MANIFEST_UNKNOWN.
func TestPullTimesForLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	pulled, idle := newImage("pulled", 1), newImage("idle", 1)
	e.push("lc/pull", "pulled", pulled)
	e.push("lc/pull", "idle", idle)
	e.clock.Advance(10 * 24 * time.Hour)
	e.getManifest("lc/pull", "pulled")
	pullAt := e.clock.Now()
	e.clock.Advance(2 * 24 * time.Hour)
	p, err := lifecycle.Parse([]byte(`{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":5},"action":{"type":"expire"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ir := reclaim.LocalRepo("lc/pull")
	check := func(when string) {
		t.Helper()
		imgs, err := e.reclaim.Images(ctx, ir)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range imgs {
			if im.Digest == pulled.digest && !im.LastPulledAt.Equal(pullAt) {
				t.Errorf("%s: the pulled image's last pull is %s; want %s", when, im.LastPulledAt, pullAt)
			}
		}
		res := reclaim.Plan(p, imgs, e.clock.Now())
		if len(res) != 1 || res[0].Digest != idle.digest {
			t.Errorf("%s: sinceImagePulled 5 days expires %+v; want only the idle image %s", when, res, idle.digest)
		}
	}
	check("before a flush")
	if err := e.store.FlushAccessTimes(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a flush")
	e.getManifest("lc/pull", "pulled") // not flushed: the restart's Close writes it
	pullAt = e.clock.Now()
	e.stop()
	e.start()
	check("after a restart")

	for _, c := range []struct{ path, code string }{
		{"/v2/lc/nope/manifests/pulled", registry.CodeNameUnknown},
		{"/v2/lc/nope/manifests/" + pulled.digest, registry.CodeNameUnknown},
		{"/v2/lc/pull/manifests/nope", registry.CodeManifestUnknown},
		{"/v2/lc/pull/manifests/" + newImage("never pushed", 1).digest, registry.CodeManifestUnknown},
	} {
		resp, body := e.do(http.MethodGet, c.path, nil)
		wantError(t, resp, body, http.StatusNotFound, c.code)
	}
}
