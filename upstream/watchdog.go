package upstream

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// watchdog cancels a request when no progress is made for a while.
type watchdog struct {
	t     *time.Timer
	fire  atomic.Bool
	limit atomic.Int64
}

func newWatchdog(d time.Duration, cancel func()) *watchdog {
	w := &watchdog{}
	w.limit.Store(int64(d))
	w.t = time.AfterFunc(d, func() { w.fire.Store(true); cancel() })
	return w
}

func (w *watchdog) reset(d time.Duration) {
	w.limit.Store(int64(d))
	w.t.Reset(d)
}

func (w *watchdog) stop()       { w.t.Stop() }
func (w *watchdog) fired() bool { return w.fire.Load() }

// watchedBody resets the watchdog on every read, and paces the reads by
// the client's bandwidth caps; the watchdog stands still while a read
// waits for a cap.
type watchedBody struct {
	io.ReadCloser
	ctx    context.Context
	credit int // bytes paid for to the bandwidth caps and not read yet
	wd     *watchdog
	cancel func()
	u      *Upstream
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p[:b.u.readSize(len(p))])
	if len(b.u.caps) > 0 && n > b.credit {
		// Whole pieces only: each wait is for the same number of bytes,
		// so fills that read in small pieces get their fair share too.
		b.wd.t.Stop()
		if perr := b.u.pace(b.ctx, paceChunk); perr != nil && err == nil {
			err = perr
		}
		b.credit += paceChunk
	}
	if n > 0 {
		b.credit = max(b.credit-n, 0)
		b.wd.t.Reset(time.Duration(b.wd.limit.Load()))
	}
	if err != nil && err != io.EOF && b.wd.fired() {
		return n, fmt.Errorf("upstream %s: %w: %w: blob stream idle for %s", b.u.Rule.Name, ErrUnavailable, ErrTimeout, time.Duration(b.wd.limit.Load()))
	}
	if err != nil && err != io.EOF {
		return n, b.u.classify(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.wd.stop()
	b.cancel()
	return b.ReadCloser.Close()
}
