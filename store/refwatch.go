package store

import "sync"

// This file keeps a deleter's plan true while pulls write. A deleter
// (package reclaim) walks the store, plans, then deletes. Pushes wait for
// it, but writes through the cache do not: while a pass runs, a fill
// commits a blob with its link, a manifest pull stores a manifest with its
// image record, a confirmation links a stored blob to another repository.
// A Watch, begun before the walk, records what each such write makes
// referenced; Hold holds those writes off while the deleter checks one
// deletion against them and makes it. So a write lands either before the
// check, and the deleter keeps what it references, or after the deletion,
// and then it brings what it needs itself: a fill writes its blob again,
// and the blobs a manifest stored then lists are filled by the pull that
// stored it. A write waits at most for one deletion, never for a pass.

// Referenced is what writes made referenced.
type Referenced struct {
	// Blobs were committed, or linked to a repository.
	Blobs []string
	// Manifests were stored, or given an image record (see Images).
	Manifests []string
	// Images are the image records written.
	Images []ImageKey
}

// ImageKey names an image record: a manifest of a repository.
type ImageKey struct {
	Repo   RepoKey
	Digest string
}

func (r *Referenced) empty() bool {
	return len(r.Blobs) == 0 && len(r.Manifests) == 0 && len(r.Images) == 0
}

func (r *Referenced) add(o *Referenced) {
	r.Blobs = append(r.Blobs, o.Blobs...)
	r.Manifests = append(r.Manifests, o.Manifests...)
	r.Images = append(r.Images, o.Images...)
}

// A Watch records what writes make referenced from its start until Close.
type Watch struct {
	s   *Store
	mu  sync.Mutex
	got Referenced // since the last Hold
}

// Watch starts recording. Writes in flight finish first, so every write
// either was committed before Watch returned (a walk begun after it sees
// it) or is recorded.
func (s *Store) Watch() *Watch {
	w := &Watch{s: s}
	s.refMu.Lock()
	s.watches = append(s.watches, w)
	s.refMu.Unlock()
	return w
}

// Close stops recording.
func (w *Watch) Close() {
	w.s.refMu.Lock()
	defer w.s.refMu.Unlock()
	for i, o := range w.s.watches {
		if o == w {
			w.s.watches = append(w.s.watches[:i], w.s.watches[i+1:]...)
			break
		}
	}
}

// Hold holds off every write that makes content referenced until release
// is called, and returns what such writes did since the previous Hold (or
// the start). The caller checks its next deletion against everything it
// was told and makes it before release; nothing it runs meanwhile may
// write references (a Batch with any, a blob commit).
func (w *Watch) Hold() (got Referenced, release func()) {
	w.s.refMu.Lock()
	w.mu.Lock()
	got, w.got = w.got, Referenced{}
	w.mu.Unlock()
	return got, w.s.refMu.Unlock
}

// writeRefs is held by a write that makes r referenced, around its
// commit: it records r in every watch, and no Hold is granted until done.
func (s *Store) writeRefs(r *Referenced) (done func()) {
	s.refMu.RLock()
	for _, w := range s.watches {
		w.mu.Lock()
		w.got.add(r)
		w.mu.Unlock()
	}
	return s.refMu.RUnlock
}
