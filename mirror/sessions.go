package mirror

import (
	"context"
	"errors"
	"sync"

	"berth/errdefs"
	"berth/registry"
	"berth/store"
)

// minPrune is how many sessions are tracked before a StartUpload first
// forgets, for every client, the sessions that ended.
const minPrune = 4096

// openUploads counts the upload sessions each client (registry.ClientKey)
// holds open, to hold it to MaxOpenUploads. A session ends when it is
// committed, cancelled or expired by idleness; openUploads does not hear of
// it, but asks the store whether a client's sessions are still open when
// the client reaches the cap, and everyone's when it tracks many. The
// count is the node's, in memory: sessions opened before a restart are
// not counted.
type openUploads struct {
	mu      sync.Mutex
	by      map[string]map[string]bool // client key → session IDs
	pending map[string]int             // client key → sessions being opened
	tracked int
	pruneAt int
}

// admit reserves a slot for one more session of client, or refuses with
// ErrTooMany when it holds limit already. open reports whether a session
// is still open. The caller ends the reservation with opened.
func (o *openUploads) admit(ctx context.Context, client string, limit int, open func(ctx context.Context, id string) bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.by == nil {
		o.by, o.pending, o.pruneAt = map[string]map[string]bool{}, map[string]int{}, minPrune
	}
	if o.tracked >= o.pruneAt {
		for c := range o.by {
			o.prune(ctx, c, open)
		}
		o.pruneAt = max(minPrune, 2*o.tracked)
	}
	if len(o.by[client])+o.pending[client] >= limit {
		o.prune(ctx, client, open)
	}
	if n := len(o.by[client]) + o.pending[client]; n >= limit {
		return errdefs.New(errdefs.ErrTooMany,
			"%d upload sessions of yours are open, and local.maxOpenUploads allows %d; finish or cancel one (DELETE its location), or wait until idle ones expire (local.uploadTimeout)",
			n, limit)
	}
	o.pending[client]++
	return nil
}

// prune forgets the sessions of client that are no longer open.
func (o *openUploads) prune(ctx context.Context, client string, open func(ctx context.Context, id string) bool) {
	for id := range o.by[client] {
		if !open(ctx, id) {
			delete(o.by[client], id)
			o.tracked--
		}
	}
	if len(o.by[client]) == 0 {
		delete(o.by, client)
	}
}

// opened ends admit's reservation: id is the session opened, "" when none
// was.
func (o *openUploads) opened(client, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending[client]--; o.pending[client] <= 0 {
		delete(o.pending, client)
	}
	if id == "" {
		return
	}
	if o.by[client] == nil {
		o.by[client] = map[string]bool{}
	}
	o.by[client][id] = true
	o.tracked++
}

// startCounted opens a session with start, held to MaxOpenUploads for the
// request's client. A request without a client key (not from the registry
// edge) is not counted.
func (m *Mirror) startCounted(ctx context.Context, start func() (registry.Upload, error)) (registry.Upload, error) {
	client := registry.ClientKey(ctx)
	limit := 0
	if m.opts.MaxOpenUploads != nil {
		limit = m.opts.MaxOpenUploads()
	}
	if client == "" || limit <= 0 {
		return start()
	}
	if err := m.open.admit(ctx, client, limit, m.uploadOpen); err != nil {
		return nil, err
	}
	id := ""
	// Deferred, so a start that panics (recovered at the edge) does not
	// keep the client's reservation for good.
	defer func() { m.open.opened(client, id) }()
	u, err := start()
	if err == nil {
		id = u.ID()
	}
	return u, err
}

// uploadOpen reports whether the store still holds session id; when it
// cannot tell, the session counts as open.
func (m *Mirror) uploadOpen(ctx context.Context, id string) bool {
	_, _, err := m.store.GetUpload(ctx, id)
	return !errors.Is(err, store.ErrNotFound)
}
