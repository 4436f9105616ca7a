package reclaim

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"berth/internal/oci"
	"berth/registry"
	"berth/store"
)

// fixture is a real store with a Reclaimer, filled the way pulls and
// pushes fill it.
type fixture struct {
	t  *testing.T
	st *store.Store
	r  *Reclaimer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &fixture{t: t, st: st, r: New(st, Options{})}
}

// blob commits data and returns its descriptor.
func (f *fixture) blob(data string) registry.Descriptor {
	f.t.Helper()
	ctx := context.Background()
	d := registry.FromBytes([]byte(data))
	if _, err := f.st.StatBlob(ctx, d.String()); err == nil {
		return registry.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
	}
	w, err := f.st.NewBlobWriter(ctx, d.String(), int64(len(data)))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := w.Write([]byte(data)); err != nil {
		w.Abort()
		f.t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
	return registry.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
}

// image stores an image manifest of config and layers in repo, tagged
// tag, with its blobs linked to repo, pulled at pulled.
func (f *fixture) image(repo store.RepoKey, tag string, pulled time.Time, config string, layers ...string) string {
	f.t.Helper()
	desc := func(data string) oci.Descriptor {
		d := f.blob(data)
		return oci.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size}
	}
	doc := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeImageManifest, Config: ptr(desc(config))}
	doc.Config.MediaType = "application/vnd.oci.image.config.v1+json"
	for _, l := range layers {
		doc.Layers = append(doc.Layers, desc(l))
	}
	body, err := json.Marshal(doc)
	if err != nil {
		f.t.Fatal(err)
	}
	d := registry.FromBytes(body).String()
	b := f.st.NewBatch()
	defer b.Close()
	for _, err := range []error{
		b.PutManifest(d, &store.Manifest{MediaType: oci.MediaTypeImageManifest, Body: body}),
		b.PutImage(repo, d, store.Image{PushedAt: pulled, LastPulledAt: pulled}),
		b.PutTag(repo.Upstream, repo.Name, tag, store.Tag{Digest: d, FetchedAt: pulled}),
		b.Link(repo, doc.Config.Digest),
	} {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	for _, l := range doc.Layers {
		if err := b.Link(repo, l.Digest); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		f.t.Fatal(err)
	}
	return d
}

func ptr[T any](v T) *T { return &v }

// blobs are the digests of the blobs in the store.
func (f *fixture) blobs() map[string]bool {
	f.t.Helper()
	out := map[string]bool{}
	err := f.st.Sweep().Blobs(context.Background(), func(d string, _ int64, _ time.Time) error {
		out[d] = true
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) hasManifest(d string) bool {
	_, err := f.st.GetManifest(context.Background(), d)
	return err == nil
}

// shared is a store with a pinned cached image and an older, unpinned
// one sharing a layer with it, plus a local image sharing another.
type shared struct {
	*fixture
	pinned, old, local   string // manifest digests
	sharedLayer, oldOnly string // blob digests
	localShared          string
}

var (
	hubA  = store.CachedKey("hub", "team/a")
	hubB  = store.CachedKey("hub", "team/b")
	appMy = store.LocalKey("private/app")
)

func newShared(t *testing.T) *shared {
	f := newFixture(t)
	now := time.Now()
	s := &shared{fixture: f}
	s.pinned = f.image(hubA, "v1", now, "config a", "shared layer", "layer of a")
	s.old = f.image(hubB, "v1", now.Add(-time.Hour), "config b", "shared layer", "layer of b", "b and local")
	s.local = f.image(appMy, "v1", now, "config local", "b and local")
	s.sharedLayer = f.blob("shared layer").Digest.String()
	s.oldOnly = f.blob("layer of b").Digest.String()
	s.localShared = f.blob("b and local").Digest.String()
	return s
}

func pinA(up, repo, _ string) bool { return up == hubA.Upstream && repo == hubA.Name }

// check asserts what stays once the old image is gone, however it went.
func (s *shared) check(how string) {
	s.t.Helper()
	blobs := s.blobs()
	if !blobs[s.sharedLayer] {
		s.t.Errorf("%s took the layer the pinned image shares with the old one", how)
	}
	if !blobs[s.localShared] {
		s.t.Errorf("%s took the layer a local image shares with the old one", how)
	}
	if blobs[s.oldOnly] {
		s.t.Errorf("%s kept the old image's own layer", how)
	}
	if !s.hasManifest(s.pinned) || !s.hasManifest(s.local) || s.hasManifest(s.old) {
		s.t.Errorf("%s: manifests pinned %v local %v old %v, want true true false", how,
			s.hasManifest(s.pinned), s.hasManifest(s.local), s.hasManifest(s.old))
	}
	if _, err := s.st.GetImage(context.Background(), hubB, s.old); !errors.Is(err, store.ErrNotFound) {
		s.t.Errorf("%s kept the old image's record: %v", how, err)
	}
	if _, err := s.st.GetTag(context.Background(), "hub", "team/b", "v1"); !errors.Is(err, store.ErrNotFound) {
		s.t.Errorf("%s kept the old image's tag: %v", how, err)
	}
}

// TestDeletersAgree evicts, expires and collects the same store and
// checks that the three agree on what an image needs: a layer shared by a
// pinned (or remaining) image and a removed one stays, and garbage
// collection afterwards takes nothing either of them left.
func TestDeletersAgree(t *testing.T) {
	ctx := context.Background()
	t.Run("eviction", func(t *testing.T) {
		s := newShared(t)
		rep, err := s.r.Evict(ctx, 0, pinA)
		if err != nil {
			t.Fatal(err)
		}
		if rep.ImagesEvicted != 1 {
			t.Fatalf("evicted %+v, want the one unpinned image", rep)
		}
		s.check("eviction")
		if _, err := s.r.GC(ctx, 0); err != nil {
			t.Fatal(err)
		}
		s.check("eviction then garbage collection")
	})
	t.Run("lifecycle expiry", func(t *testing.T) {
		s := newShared(t)
		rep, err := s.r.ExpireImages(ctx, []ImageRef{{Repo: ImageRepo{Key: hubB}, Digest: s.old}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ImagesExpired != 1 || rep.BlobsDeleted != 2 {
			t.Fatalf("expired %+v, want 1 image and its 2 own blobs (config, layer)", rep)
		}
		s.check("lifecycle expiry")
		if _, err := s.r.GC(ctx, 0); err != nil {
			t.Fatal(err)
		}
		s.check("lifecycle expiry then garbage collection")
	})
	t.Run("garbage collection keeps cached content", func(t *testing.T) {
		s := newShared(t)
		before := s.blobs()
		rep, err := s.r.GC(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.BlobsDeleted != 0 || rep.ManifestsDeleted != 0 || len(s.blobs()) != len(before) {
			t.Fatalf("GC of a store whose every blob an image needs removed %+v", rep)
		}
	})
}
