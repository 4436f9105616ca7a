package upstream

import (
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

// watchedBody resets the watchdog on every read.
type watchedBody struct {
	io.ReadCloser
	wd     *watchdog
	cancel func()
	u      *Upstream
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
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
