package reclaim

import (
	"context"

	"berth/store"
)

// guard keeps a pass's deletions to what its walk saw unreferenced.
// Pushes wait for a pass (Push), but writes through the cache do not: a
// fill, a manifest pull or a confirmation may make a blob or manifest the
// plan counted as unneeded referenced again after the walk. The pass
// watches those writes from before its walk (store.Watch), and makes each
// deletion in do, which holds them off while it checks the deletion against
// everything they made referenced since the walk began (see
// store/refwatch.go). A write waits for one deletion, never for the pass.
type guard struct {
	w *store.Watch
	g *graph
	// blobs and mans are what writes made referenced since the walk:
	// their blobs and manifests, and what those manifests need.
	blobs, mans bits
	// read are the manifests of mans read from the store: one not stored
	// yet when a manifest listing it was stored is read when it is.
	read   bits
	images map[store.ImageKey]bool
}

func newGuard(w *store.Watch, g *graph) *guard {
	return &guard{w: w, g: g, images: map[store.ImageKey]bool{}}
}

// do runs fn, one deletion, with the writes that make content referenced
// held off, after taking in what they made referenced so far; fn asks
// blob, manifest and image what must stay.
func (gd *guard) do(ctx context.Context, fn func() error) error {
	got, release := gd.w.Hold()
	defer release()
	for _, d := range got.Blobs {
		gd.blobs.set(gd.g.blobs.id(gd.g.ds.key(d)))
	}
	for _, im := range got.Images {
		gd.images[im] = true
	}
	for _, d := range got.Manifests {
		gd.keep(ctx, gd.g.manID(d))
	}
	return fn()
}

// keep marks manifest id and what it needs, read from the store now: the
// graph's edges may be of a manifest not stored at the walk.
func (gd *guard) keep(ctx context.Context, id int32) {
	stack := []int32{id}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if gd.read.has(d) {
			continue
		}
		gd.mans.set(d)
		m, err := gd.g.st.Sweep().Manifest(ctx, gd.g.manDigest(d))
		if err != nil {
			continue // not stored (yet): the write that stores it brings it here
		}
		gd.read.set(d)
		doc, ok := readManifest(m.Body)
		if !ok {
			continue
		}
		bs, cs := split(&doc)
		for _, b := range bs {
			gd.blobs.set(gd.g.blobs.id(gd.g.ds.key(b)))
		}
		for _, c := range cs {
			stack = append(stack, gd.g.manID(c))
		}
	}
}

// blob reports whether blob id was made referenced since the walk.
func (gd *guard) blob(id int32) bool { return gd.blobs.has(id) }

// manifest reports whether manifest id was made referenced since the walk.
func (gd *guard) manifest(id int32) bool { return gd.mans.has(id) }

// image reports whether the image record of digest in repo was written
// since the walk.
func (gd *guard) image(repo store.RepoKey, digest string) bool {
	return gd.images[store.ImageKey{Repo: repo, Digest: digest}]
}
