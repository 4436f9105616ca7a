package reclaim

import (
	"context"
	"slices"
	"time"

	"berth/store"
)

// This file is the one reachability walk. An image is a manifest of a
// repository (an image record); it needs its manifest, the config and
// layers that manifest lists, and for an index its children's, all the
// way down. Garbage collection keeps what any image needs, eviction and
// lifecycle expiry delete what no remaining image needs: all three read
// the graph below.
//
// A pass over a large store meets every digest in it, so the graph holds
// none as a string: manifests and blobs are numbered by sorted tables of
// fixed-size keys (keys.go), what a manifest lists is a run of numbers in
// one array, and sets over them are slices indexed by number.

// image is one image record: its repository (an index in graph.repos) and
// manifest (a manifest id).
type image struct {
	repo int32
	man  int32
}

// graph is the store's manifests, blobs and images and, as they are asked
// for, what each manifest lists.
type graph struct {
	st     *store.Store
	ds     digests
	mans   table // every manifest stored when the walk began, then any other met
	blobs  table // every blob stored when the walk began, then any other met
	nodes  []node
	refs   []int32 // what nodes list: blob ids, then child manifest ids
	repos  []store.RepoKey
	images []image
	// visit marks the manifests one closure has reached: those set to gen.
	visit []uint32
	gen   uint32
}

// node is what manifest id lists: refs[off:off+nb] are blobs,
// refs[off+nb:off+nb+nc] manifests; off is -1 until it is read.
type node struct{ off, nb, nc int32 }

// walk lists every manifest and blob of the store, then reads every image
// record. The manifests are listed first: garbage collection deletes only
// those (see GC).
func (r *Reclaimer) walk(ctx context.Context) (*graph, error) {
	g, err := r.list(ctx)
	if err != nil {
		return nil, err
	}
	err = r.store.Sweep().Images(ctx, func(repo store.RepoKey, d string) error {
		if n := len(g.repos); n == 0 || g.repos[n-1] != repo { // records come grouped by repository
			g.repos = append(g.repos, repo)
		}
		g.images = append(g.images, image{int32(len(g.repos) - 1), g.manID(d)})
		return nil
	})
	return g, err
}

// list lists every manifest, then every blob of the store, into the
// graph's tables.
func (r *Reclaimer) list(ctx context.Context) (*graph, error) {
	g := &graph{st: r.store}
	sw := r.store.Sweep()
	var keys []dkey
	err := sw.Manifests(ctx, func(d string) error {
		keys = append(keys, g.ds.key(d))
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.mans = newTable(slices.Clip(keys))
	keys = make([]dkey, 0, r.store.Stats().Blobs)
	err = sw.Blobs(ctx, func(d string, _ int64, _ time.Time) error {
		keys = append(keys, g.ds.key(d))
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.blobs = newTable(keys)
	return g, nil
}

func (g *graph) manID(d string) int32 { return g.mans.id(g.ds.key(d)) }

func (g *graph) manDigest(id int32) string  { return g.ds.digest(g.mans.key(id)) }
func (g *graph) blobDigest(id int32) string { return g.ds.digest(g.blobs.key(id)) }

// edges returns what manifest id lists, reading it the first time; a
// manifest not in the store, or not JSON, lists nothing. The slices are
// valid until the next call.
func (g *graph) edges(ctx context.Context, id int32) (blobs, children []int32) {
	for int(id) >= len(g.nodes) {
		g.nodes = append(g.nodes, node{off: -1})
	}
	if n := g.nodes[id]; n.off >= 0 {
		return g.refs[n.off : n.off+n.nb], g.refs[n.off+n.nb : n.off+n.nb+n.nc]
	}
	off := len(g.refs)
	var nb int
	g.refs, nb = g.read(ctx, id, g.refs)
	n := node{off: int32(off), nb: int32(nb), nc: int32(len(g.refs) - off - nb)}
	g.nodes[id] = n
	return g.refs[n.off : n.off+n.nb], g.refs[n.off+n.nb : n.off+n.nb+n.nc]
}

// read appends to refs what manifest id lists, its blobs (nb of them)
// then its child manifests, reading it from the store; a manifest not in
// the store, or not JSON, lists nothing.
func (g *graph) read(ctx context.Context, id int32, refs []int32) (_ []int32, nb int) {
	m, err := g.st.Sweep().Manifest(ctx, g.manDigest(id))
	if err != nil {
		return refs, 0
	}
	doc, ok := readManifest(m.Body)
	if !ok {
		return refs, 0
	}
	bs, cs := split(&doc)
	for _, b := range bs {
		refs = append(refs, g.blobs.id(g.ds.key(b)))
	}
	for _, c := range cs {
		refs = append(refs, g.manID(c))
	}
	return refs, len(bs)
}

// closure returns the blobs and manifests (itself first) an image of
// manifest id needs, the manifests each once, breadth first.
func (g *graph) closure(ctx context.Context, id int32) (blobs, mans []int32) {
	g.gen++
	queue := []int32{id}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for int(d) >= len(g.visit) {
			g.visit = append(g.visit, 0)
		}
		if g.visit[d] == g.gen {
			continue
		}
		g.visit[d] = g.gen
		mans = append(mans, d)
		bs, cs := g.edges(ctx, d)
		blobs = append(blobs, bs...)
		queue = append(queue, cs...)
	}
	return blobs, mans
}

// needed marks the blobs and manifests the images need.
func (g *graph) needed(ctx context.Context, images []image) (blobs, mans bits) {
	var m marker
	for _, im := range images {
		m.mark(im.man, func(d int32) ([]int32, []int32) { return g.edges(ctx, d) })
	}
	return m.blobs, m.mans
}

// marker marks what images need, an image at a time.
type marker struct {
	blobs, mans bits
	stack       []int32
}

// mark marks manifest id and what it needs; edges says what a manifest
// lists.
func (m *marker) mark(id int32, edges func(int32) (blobs, children []int32)) {
	m.stack = append(m.stack[:0], id)
	for len(m.stack) > 0 {
		d := m.stack[len(m.stack)-1]
		m.stack = m.stack[:len(m.stack)-1]
		if m.mans.has(d) {
			continue // the same manifest in another repository, or a child already reached
		}
		m.mans.set(d)
		bs, cs := edges(d)
		for _, b := range bs {
			m.blobs.set(b)
		}
		m.stack = append(m.stack, cs...)
	}
}

// markImages marks what every image record of the store needs, reading
// the records as they come and each manifest once, keeping neither.
func (r *Reclaimer) markImages(ctx context.Context, g *graph) (blobs, mans bits, err error) {
	var m marker
	var buf []int32
	edges := func(d int32) ([]int32, []int32) {
		var nb int
		buf, nb = g.read(ctx, d, buf[:0])
		return buf[:nb], buf[nb:]
	}
	err = r.store.Sweep().Images(ctx, func(_ store.RepoKey, d string) error {
		m.mark(g.manID(d), edges)
		return nil
	})
	return m.blobs, m.mans, err
}

// bits is a set of ids.
type bits []uint64

func (b *bits) set(i int32) {
	for int(i>>6) >= len(*b) {
		*b = append(*b, 0)
	}
	(*b)[i>>6] |= 1 << (i & 63)
}

func (b bits) has(i int32) bool { return int(i>>6) < len(b) && b[i>>6]&(1<<(i&63)) != 0 }

// links is the blob links of the store, as the deleters read them, by
// blob id of the graph.
type links struct {
	// cached: blobs linked to a cached repository; local: blobs linked
	// to a local repository (not deleted).
	cached, local bits
	// recs are every link record (linked or deleted), by blob id, and
	// repos the repositories they name.
	recs  []linkRec
	repos []store.RepoKey
}

type linkRec struct{ blob, repo int32 }

func (r *Reclaimer) links(ctx context.Context, g *graph) (*links, error) {
	l := &links{}
	err := r.store.Sweep().Links(ctx, func(repo store.RepoKey, digest string, linked bool) error {
		if n := len(l.repos); n == 0 || l.repos[n-1] != repo { // records come grouped by repository
			l.repos = append(l.repos, repo)
		}
		id := g.blobs.id(g.ds.key(digest))
		l.recs = append(l.recs, linkRec{id, int32(len(l.repos) - 1)})
		switch {
		case repo.Cached():
			l.cached.set(id)
		case linked:
			l.local.set(id)
		}
		return nil
	})
	// By blob, each blob's in the order read.
	slices.SortFunc(l.recs, func(a, b linkRec) int {
		if a.blob != b.blob {
			return int(a.blob - b.blob)
		}
		return int(a.repo - b.repo)
	})
	return l, err
}

// all are every repository blob id has a link record in (linked or
// deleted from it).
func (l *links) all(id int32) []store.RepoKey {
	i, _ := slices.BinarySearchFunc(l.recs, id, func(r linkRec, id int32) int { return int(r.blob - id) })
	var out []store.RepoKey
	for ; i < len(l.recs) && l.recs[i].blob == id; i++ {
		out = append(out, l.repos[l.recs[i].repo])
	}
	return out
}

// cachedBlobs is the blobs linked to a cached repository, for garbage
// collection (which leaves them to eviction).
func (r *Reclaimer) cachedBlobs(ctx context.Context, g *graph) (bits, error) {
	var cached bits
	err := r.store.Sweep().Links(ctx, func(repo store.RepoKey, digest string, _ bool) error {
		if repo.Cached() {
			cached.set(g.blobs.id(g.ds.key(digest)))
		}
		return nil
	})
	return cached, err
}

// linkRepos returns, for each blob of want, every repository it has a
// link record in (linked or deleted from it).
func (r *Reclaimer) linkRepos(ctx context.Context, g *graph, want map[dkey]int64) (map[dkey][]store.RepoKey, error) {
	out := map[dkey][]store.RepoKey{}
	if len(want) == 0 {
		return out, nil
	}
	err := r.store.Sweep().Links(ctx, func(repo store.RepoKey, digest string, _ bool) error {
		k := g.ds.key(digest)
		if _, ok := want[k]; ok {
			out[k] = append(out[k], repo)
		}
		return nil
	})
	return out, err
}
