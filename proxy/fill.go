package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
)

// fill is one download of a blob from an upstream into the store, shared by
// every request for that digest while it runs. Readers follow the bytes as
// they are written; the last byte is released only once the bytes hash to
// the digest, so a fill that fails verification cuts every reader's stream.
// The commit (fsync, rename, index) follows the release: a reader never
// waits for the disk, and one that has every byte keeps them even when the
// commit fails, as they verified.
type fill struct {
	key    string // the fill's entry in fillGroup (see fillKey)
	digest string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	started bool          // size and file are known
	size    int64
	file    store.ReaderAtCloser // read side of the temporary file (plaintext)
	written int64
	src     source // where the bytes come from
	// verified: the bytes hash to the digest; readers may have them all.
	verified bool
	done     bool
	err      error
	refs     int // open readers
}

func newFill(key, digest string) *fill {
	return &fill{key: key, digest: digest, changed: make(chan struct{}), size: -1}
}

// notify wakes waiters. Callers hold f.mu.
func (f *fill) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitStarted waits until the upstream answered (size known) or failed.
func (f *fill) waitStarted(ctx context.Context) (int64, error) {
	for {
		f.mu.Lock()
		started, done, size, err, ch := f.started, f.done, f.size, f.err, f.changed
		f.mu.Unlock()
		switch {
		case started:
			return size, nil
		case done && err != nil:
			return -1, err
		case done:
			return -1, errors.New("fill ended before it started")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
}

// fillGroup holds the fills in flight on this node.
type fillGroup struct {
	mu    sync.Mutex
	fills map[string]*fill
	wg    sync.WaitGroup // running fill goroutines
	log   fillLog        // what the status page lists (fillstatus.go)
}

// join returns the fill of key, starting one of digest with start when
// none runs.
func (g *fillGroup) join(key, digest string, start func(*fill)) *fill {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.fills[key]; ok {
		return f
	}
	f := newFill(key, digest)
	g.fills[key] = f
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		start(f)
	}()
	return f
}

func (g *fillGroup) remove(f *fill) {
	g.mu.Lock()
	if g.fills[f.key] == f {
		delete(g.fills, f.key)
	}
	g.mu.Unlock()
}

// inFlight returns the running fill of key, if any.
func (g *fillGroup) inFlight(key string) *fill {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fills[key]
}

// WaitFills waits until no fill runs on this node (each committed, failed
// or was cancelled), or ctx ends. A fill's clients have its last byte once
// the bytes verified, before the commit: what needs the blob in the store
// after a pull (a test, a mount that follows it) waits here.
func (p *Proxy) WaitFills(ctx context.Context) error {
	for {
		p.fills.mu.Lock()
		var f *fill
		for _, f = range p.fills.fills {
			break
		}
		p.fills.mu.Unlock()
		if f == nil {
			return nil
		}
		if err := f.waitDone(ctx); err != nil {
			return err
		}
	}
}

// waitDone waits until the fill ended (it left its group before).
func (f *fill) waitDone(ctx context.Context) error {
	for {
		f.mu.Lock()
		done, ch := f.done, f.changed
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Count is how many fills are in flight.
func (g *fillGroup) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.fills)
}

// maxResumes is how often a broken upstream stream is resumed with Range.
const maxResumes = 2

// runFill downloads the blob into the store for o's repository (see
// store.Origin). It runs detached from any client: its context is the
// proxy's, bounded by the fill timeout.
func (p *Proxy) runFill(f *fill, up *upstream.Upstream, o store.Origin, srcs []source) {
	ctx, cancel := context.WithTimeout(p.baseCtx, p.opts.FillTimeout)
	defer cancel()
	if p.storedAlready(ctx, f, o) {
		return
	}
	start := time.Now()
	repo := o.Repo.Name
	p.fills.begin(f, up.Rule.Name, repo, start)
	err := p.doFill(ctx, f, o, srcs)
	took := time.Since(start)
	p.opts.Metrics.Fill(up.Rule.Name, took, err)
	// The index is written (or the fill failed) before the fill leaves the
	// map, so a request that finds no fill finds the blob in the store;
	// and the log says a fill ended once it left, so a request made after
	// the line is answered from the store.
	p.fills.finish(f, err, time.Now())
	if err != nil {
		p.log.Warn("blob fill failed", zap.String("digest", f.digest), zap.String("upstream", up.Rule.Name),
			zap.String("repo", repo), zap.Error(err))
	} else {
		p.log.Info("blob filled", zap.String("digest", f.digest), zap.String("upstream", up.Rule.Name),
			zap.String("repo", repo), zap.Stringer("from", f.src), zap.Int64("bytes", f.size), zap.Duration("duration", took))
	}
	f.mu.Lock()
	f.done, f.err = true, err
	f.releaseLocked()
	f.notify()
	f.mu.Unlock()
}

// storedAlready ends f at once, reading nothing, when the store holds the
// blob for o's repository. A request checks the store before it joins the
// fills in flight, and a fill of the same scope may commit and leave in
// between: the fill that request starts then finds the blob here, so the
// upstream still sees one GET per blob. Its readers read the stored blob.
func (p *Proxy) storedAlready(ctx context.Context, f *fill, o store.Origin) bool {
	info, err := p.store.Visible(ctx, o.Repo, f.digest)
	if err != nil {
		return false
	}
	f.mu.Lock()
	f.started, f.size = true, info.Size
	f.mu.Unlock()
	p.fills.finish(f, nil, time.Now())
	f.mu.Lock()
	f.done = true
	f.notify()
	f.mu.Unlock()
	return true
}

// openFirst opens the first source that answers, from index i on.
func openFirst(ctx context.Context, srcs []source, i int, off, last int64) (*prefetcher, int64, int, error) {
	var errs []error
	for ; i < len(srcs); i++ {
		body, size, err := srcs[i].open(ctx, off, last)
		if err == nil {
			return newPrefetcher(body), size, i, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", srcs[i], err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, -1, i, errors.Unwrap(errs[0])
	}
	return nil, -1, i, errors.Join(errs...)
}

// doFill reads the blob from its sources into the store. A stream that
// breaks is resumed with a Range request at the byte reached: from the next
// source when the broken one is a peer (it may have died), else from the
// upstream again, at most maxResumes times.
func (p *Proxy) doFill(ctx context.Context, f *fill, o store.Origin, srcs []source) error {
	// The blob's file is created while the upstream's headers are on their
	// way: the client waits for both before its first byte.
	opened := make(chan openedWriter, 1)
	go func() {
		w, err := p.store.NewBlobWriter(ctx, f.digest, -1)
		opened <- openedWriter{w, err}
	}()
	body, size, cur, err := openFirst(ctx, srcs, 0, 0, -1)
	if err != nil {
		if ow := <-opened; ow.err == nil {
			ow.w.Abort()
		}
		return err
	}
	w, err := p.startFill(ctx, f, srcs[cur], size, opened)
	if err != nil {
		body.Close()
		return err
	}
	cur, err = p.copyResuming(ctx, f, w, body, srcs, cur, size)
	if err == nil {
		err = w.Verify()
	}
	if err != nil {
		w.Abort()
		if errors.Is(err, store.ErrDigestMismatch) {
			return fmt.Errorf("%s sent bytes that do not match %s: %w", srcs[cur], f.digest, err)
		}
		return err
	}
	// The last byte goes out now; the commit makes the blob durable
	// meanwhile (most of it is already: see store's writeback).
	f.mu.Lock()
	f.verified = true
	f.notify()
	f.mu.Unlock()
	// Committed with its link to the cached repository (garbage
	// collection leaves cached blobs to eviction) and, for a rule without
	// credentials, its origin record, in one write.
	return w.CommitFor(ctx, o)
}

// openedWriter is a blob writer opened before the blob's size was known.
type openedWriter struct {
	w   *store.BlobWriter
	err error
}

// startFill makes room for a blob of size bytes from src, takes its writer
// (opened meanwhile, see doFill) and publishes the fill to its readers: its
// size, the file they follow and the source it comes from.
func (p *Proxy) startFill(ctx context.Context, f *fill, src source, size int64, opened <-chan openedWriter) (*store.BlobWriter, error) {
	ow := <-opened
	if ow.err != nil {
		return nil, ow.err
	}
	w := ow.w
	err := w.Expect(size)
	if err == nil && size < 0 {
		err = fmt.Errorf("%s sent blob %s without its size: %w", src, f.digest, upstream.ErrUnavailable)
	}
	if err == nil && p.opts.Reserve != nil {
		err = p.opts.Reserve(ctx, size)
	}
	if err != nil {
		w.Abort()
		return nil, err
	}
	rf, err := w.Follow()
	if err != nil {
		w.Abort()
		return nil, err
	}
	f.mu.Lock()
	f.started, f.size, f.file, f.src = true, size, rf, src
	f.refs++ // the fill's own reference, dropped in runFill
	f.notify()
	f.mu.Unlock()
	return w, nil
}

// copyResuming copies body, the stream from srcs[cur], into w until size
// bytes are written, telling the fill's readers of every write. A stream
// that breaks is reopened at the byte reached (see doFill). It closes every
// stream it reads and returns the index of the source that sent the last
// bytes; on an error the caller aborts w.
func (p *Proxy) copyResuming(ctx context.Context, f *fill, w *store.BlobWriter, body *prefetcher, srcs []source, cur int, size int64) (int, error) {
	resumes := 0
	for w.Written() < size {
		piece, rerr := body.next()
		if n := len(piece); n > 0 {
			if _, werr := w.Write(piece); werr != nil {
				body.Close()
				return cur, werr
			}
			f.mu.Lock()
			f.written = w.Written()
			f.notify()
			f.mu.Unlock()
		}
		if rerr == nil {
			continue
		}
		body.Close()
		if rerr == io.EOF && w.Written() == size {
			return cur, nil
		}
		if rerr == io.EOF {
			rerr = io.ErrUnexpectedEOF
		}
		next := cur
		if srcs[cur].isPeer() {
			next++
		} else {
			resumes++
		}
		if next >= len(srcs) || resumes > maxResumes || ctx.Err() != nil || errors.Is(rerr, upstream.ErrTimeout) && resumes > 1 {
			return cur, fmt.Errorf("blob %s from %s: stream broke at %d of %d bytes: %w", f.digest, srcs[cur], w.Written(), size, rerr)
		}
		p.log.Info("resuming broken blob stream", zap.String("digest", f.digest), zap.Stringer("from", srcs[cur]),
			zap.Int64("offset", w.Written()), zap.Error(rerr))
		var total int64
		var err error
		body, total, cur, err = openFirst(ctx, srcs, next, w.Written(), size-1)
		if err == nil && total >= 0 && total != size {
			body.Close()
			err = fmt.Errorf("%s reports blob %s as %d bytes, not %d", srcs[cur], f.digest, total, size)
		}
		if err != nil {
			return cur, err
		}
	}
	body.Close()
	return cur, nil
}

// releaseLocked drops one reference and closes the file with the last.
func (f *fill) releaseLocked() {
	if f.file == nil {
		return
	}
	f.refs--
	if f.refs <= 0 && f.done {
		f.file.Close()
		f.file = nil
	}
}

// fillBlob serves a blob that is being filled.
type fillBlob struct {
	p *Proxy
	f *fill
}

func (b *fillBlob) Size() int64 { return b.f.size }
func (b *fillBlob) Source() registry.Source {
	switch {
	case b.f.src == nil: // the store held it already (storedAlready)
		return registry.SourceStore
	case b.f.src.isPeer():
		return registry.SourcePeer
	}
	return registry.SourceUpstream
}

func (b *fillBlob) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	f := b.f
	f.mu.Lock()
	if f.file == nil {
		// The fill finished and every reader left: read the stored blob.
		err := f.err
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		stored := storedBlob(b.p.store, f.digest, f.size)
		return stored.Open(ctx, off)
	}
	f.refs++
	f.mu.Unlock()
	return &fillReader{f: f, off: off, ctx: ctx}, nil
}
