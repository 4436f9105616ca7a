// Package reclaim is everything that deletes from the node's store: garbage
// collection, eviction of cached content under the capacity policy,
// lifecycle expiry of images, repository deletes and manifest deletes.
// They share one reachability walk (walk.go), so they agree on what an
// image needs, and one lock, which pushes hold shared (Push) so a deleter
// never takes a blob a push is about to reference. Writes through the
// cache do not take it; each deletion is checked against what they made
// referenced since the pass's walk instead (guard.go).
package reclaim

import (
	"runtime/debug"
	"sync"
	"time"

	"berth/store"

	"go.uber.org/zap"
)

// Options configure a Reclaimer.
type Options struct {
	Logger *zap.Logger
	Now    func() time.Time
	// Planned, when set, is called by eviction, expiry and garbage
	// collection once a pass has walked the store and planned what it
	// deletes, before its first deletion: tests write there what a pull
	// writes meanwhile.
	Planned func()
}

// Reclaimer deletes from a store. A node has one per store.
type Reclaimer struct {
	store   *store.Store
	log     *zap.Logger
	now     func() time.Time
	planned func()

	// mu is held shared by pushes (Push) and exclusively by every
	// deleter.
	mu sync.RWMutex
}

// New returns the Reclaimer of st.
func New(st *store.Store, opts Options) *Reclaimer {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reclaimer{store: st, log: opts.Logger, now: opts.Now, planned: opts.Planned}
}

// Push holds off every deleter while a push makes blobs referenced
// (manifest PUT, upload commit, mount). Call done when the push is
// committed or failed.
func (r *Reclaimer) Push() (done func()) {
	r.mu.RLock()
	return r.mu.RUnlock
}

// hasPlanned calls the Planned hook, if any.
func (r *Reclaimer) hasPlanned() {
	if r.planned != nil {
		r.planned()
	}
}

// release returns the memory of a pass's graph once the pass is done. The
// Go heap grows to twice what its last collection found live before it
// collects again, and during a pass the graph is most of that; without a
// collection now, whatever runs next (a lifecycle run after a garbage
// collection) would grow the heap as far again before it is collected.
// A pass walks the whole store, so the collection costs little beside it.
func release() { debug.FreeOSMemory() }
