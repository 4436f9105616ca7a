package reclaim

import (
	"context"

	"berth/store"
)

// This file is the one reachability walk. An image is a manifest of a
// repository (an image record); it needs its manifest, the config and
// layers that manifest lists, and for an index its children's, all the
// way down. Garbage collection keeps what any image needs, eviction and
// lifecycle expiry delete what no remaining image needs: all three read
// the graph below.

// image is one image record.
type image struct {
	repo   store.RepoKey
	digest string
}

// graph is the store's images and, as they are asked for, what each
// manifest lists.
type graph struct {
	st     *store.Store
	images []image
	edges  map[string]edges // manifest digest -> what it lists
}

type edges struct{ blobs, children []string }

// walk reads every image record of the store.
func (r *Reclaimer) walk(ctx context.Context) (*graph, error) {
	g := &graph{st: r.store, edges: map[string]edges{}}
	err := r.store.Sweep().Images(ctx, func(repo store.RepoKey, digest string) error {
		g.images = append(g.images, image{repo, digest})
		return nil
	})
	return g, err
}

// edgesOf returns what manifest d lists; a manifest not in the store, or
// not JSON, lists nothing.
func (g *graph) edgesOf(ctx context.Context, d string) edges {
	if e, ok := g.edges[d]; ok {
		return e
	}
	var e edges
	if m, err := g.st.Sweep().Manifest(ctx, d); err == nil {
		if doc, ok := readManifest(m.Body); ok {
			e.blobs, e.children = split(&doc)
		}
	}
	g.edges[d] = e
	return e
}

// closure returns the blobs and manifests (itself included) an image of
// manifest digest needs, each once.
func (g *graph) closure(ctx context.Context, digest string) (blobs, mans []string) {
	seen := map[string]bool{}
	queue := []string{digest}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		mans = append(mans, d)
		e := g.edgesOf(ctx, d)
		blobs = append(blobs, e.blobs...)
		queue = append(queue, e.children...)
	}
	return blobs, mans
}

// needed returns the blobs and manifests the images need.
func (g *graph) needed(ctx context.Context, images []image) (blobs, mans map[string]bool) {
	blobs, mans = map[string]bool{}, map[string]bool{}
	for _, im := range images {
		if mans[im.digest] {
			continue // the same manifest in another repository, or a child already reached
		}
		bs, ms := g.closure(ctx, im.digest)
		for _, b := range bs {
			blobs[b] = true
		}
		for _, m := range ms {
			mans[m] = true
		}
	}
	return blobs, mans
}

// links is the blob links of the store, as the deleters read them.
type links struct {
	// cached are the cached repositories a blob is linked to.
	cached map[string][]store.RepoKey
	// all are every repository a blob has a link record in (linked or
	// deleted from it).
	all map[string][]store.RepoKey
	// local marks blobs linked to a local repository (not deleted).
	local map[string]bool
}

func (r *Reclaimer) links(ctx context.Context) (links, error) {
	l := links{cached: map[string][]store.RepoKey{}, all: map[string][]store.RepoKey{}, local: map[string]bool{}}
	err := r.store.Sweep().Links(ctx, func(repo store.RepoKey, digest string, linked bool) error {
		l.all[digest] = append(l.all[digest], repo)
		switch {
		case repo.Cached():
			l.cached[digest] = append(l.cached[digest], repo)
		case linked:
			l.local[digest] = true
		}
		return nil
	})
	return l, err
}
