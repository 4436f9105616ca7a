package store

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// This file is how access times are recorded: a pull's time is an entry
// in a bounded table in memory, and the table's new times are written to
// pebble in batches, once every accessFlushEvery, when the table fills,
// and at Close. A pull reads and writes nothing for it, and a hot image
// costs one write per flush however often it is pulled. Every read of an
// access time (GetImage, ListImages, LastAccess) sees the table's. The
// times are advisory (eviction's order, lifecycle's sinceImagePulled): a
// process killed without Close loses the accesses of its last interval.

// accessFlushEvery is how often access times are written, and so how
// stale a recorded one may get on disk.
const accessFlushEvery = time.Minute

// maxAccessEntries bounds the table: past it a flush is started, and the
// written entries are dropped; at twice as many a recording waits for a
// flush.
const maxAccessEntries = 100_000

// accessBatch is how many times one flush batch writes: image records
// are read and rewritten under imageMu, which image writers wait for.
const accessBatch = 1024

// access is a key's latest access (unix nanoseconds) and whether it is
// not written yet.
type access struct {
	last    int64
	pending bool
}

// accessTable is the store's access times not yet dropped, by the pebble
// key they are written to: an image record (img/…) or a blob's access
// time (acc/…).
type accessTable struct {
	mu      sync.Mutex
	m       map[string]access
	pending int
	// flushMu orders flushes; kick asks the flusher for one.
	flushMu sync.Mutex
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newAccessTable() *accessTable {
	return &accessTable{m: map[string]access{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// record notes an access to key at t. It reports whether the table is
// full, when the caller must flush before going on.
func (a *accessTable) record(key []byte, t time.Time) (full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ns := t.UnixNano()
	e, ok := a.m[string(key)]
	if ok && ns <= e.last {
		return false
	}
	if !ok && len(a.m) >= 2*maxAccessEntries {
		return true
	}
	if !e.pending {
		a.pending++
	}
	a.m[string(key)] = access{last: ns, pending: true}
	if !ok && len(a.m) >= maxAccessEntries {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	return false
}

// latest is the later of recorded, an access time read from the store,
// and key's latest access in the table.
func (a *accessTable) latest(key []byte, recorded time.Time) time.Time {
	a.mu.Lock()
	e, ok := a.m[string(key)]
	a.mu.Unlock()
	if ok && e.last > recorded.UnixNano() {
		return time.Unix(0, e.last)
	}
	return recorded
}

// has reports whether key has an entry: a key taken by a flush keeps its
// entry until the flush settles, unless its record is deleted.
func (a *accessTable) has(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.m[key]
	return ok
}

// forget drops key's entry: its record is deleted.
func (a *accessTable) forget(key []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.m[string(key)]; ok {
		if e.pending {
			a.pending--
		}
		delete(a.m, string(key))
	}
}

type pendingAccess struct {
	key  string
	last int64
}

// take returns the pending entries, marking them written.
func (a *accessTable) take() []pendingAccess {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]pendingAccess, 0, a.pending)
	for k, e := range a.m {
		if e.pending {
			out = append(out, pendingAccess{k, e.last})
			a.m[k] = access{last: e.last}
		}
	}
	a.pending = 0
	return out
}

// settle marks entries written (ok) or pending again, then drops the
// written ones when the table is full.
func (a *accessTable) settle(failed []pendingAccess) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range failed {
		if e, ok := a.m[p.key]; ok && !e.pending {
			a.m[p.key] = access{last: e.last, pending: true}
			a.pending++
		}
	}
	if len(a.m) >= maxAccessEntries {
		for k, e := range a.m {
			if !e.pending {
				delete(a.m, k)
			}
		}
	}
}

// FlushAccessTimes writes the access times recorded since the last
// flush. The store does so every minute, when its table fills and at
// Close; tests and shutdown call it to be sure.
func (s *Store) FlushAccessTimes(ctx context.Context) error {
	a := s.access
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	todo := a.take()
	var failed []pendingAccess
	var firstErr error
	for i := 0; i < len(todo); i += accessBatch {
		chunk := todo[i:min(i+accessBatch, len(todo))]
		if err := s.writeAccess(chunk); err != nil {
			failed = append(failed, chunk...)
			firstErr = errors.Join(firstErr, err)
		}
	}
	a.settle(failed)
	return firstErr
}

// writeAccess writes one batch of access times: an image record gets its
// LastPulledAt, a blob its access time; an image record or blob deleted
// meanwhile is not written again (their deletes hold imageMu shared).
func (s *Store) writeAccess(chunk []pendingAccess) error {
	s.imageMu.Lock()
	defer s.imageMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range chunk {
		key := []byte(p.key)
		if !bytes.HasPrefix(key, prefixImage) {
			// A blob deleted since take is forgotten (DeleteBlob); it
			// gets no access record back.
			if s.access.has(p.key) {
				_ = b.Set(key, putTime(nil, time.Unix(0, p.last)), nil)
			}
			continue
		}
		v, err := s.get(key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		im, ok := decodeImage(v)
		if !ok || im.LastPulledAt.UnixNano() >= p.last {
			continue
		}
		im.LastPulledAt = time.Unix(0, p.last)
		_ = b.Set(key, encodeImage(im), nil)
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(pebble.NoSync)
}

// flushAccess is the store's flusher: it writes the access times every
// accessFlushEvery, and when the table fills.
func (s *Store) flushAccess() {
	a := s.access
	defer close(a.done)
	t := time.NewTicker(accessFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		case <-a.kick:
		}
		if err := s.FlushAccessTimes(context.Background()); err != nil {
			s.log.Warn("write access times", zap.Error(err))
		}
	}
}

// recordAccess notes an access to key at now, flushing first when the
// table is full.
func (s *Store) recordAccess(ctx context.Context, key []byte, now time.Time) error {
	for s.access.record(key, now) {
		if err := s.FlushAccessTimes(ctx); err != nil {
			return err
		}
	}
	return nil
}

// closeAccess stops the flusher and writes what it had not.
func (s *Store) closeAccess() error {
	close(s.access.stop)
	<-s.access.done
	return s.FlushAccessTimes(context.Background())
}
