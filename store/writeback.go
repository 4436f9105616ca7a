package store

import (
	"os"
	"sync"
)

// writebackStep is how many bytes a blob file grows by between two steps
// of its background writeback.
const writebackStep = 8 << 20

// writeback makes a blob file durable in steps while it is written: every
// writebackStep bytes, a goroutine of its own has the kernel write the
// file's bytes out and waits for them (syncRange), so the fsync of
// the commit finds at most a step or two left and the writer never waits
// for the disk. A step still running when the next is due absorbs it. The
// goroutine starts with the first step, so a small blob costs none.
type writeback struct {
	f    *os.File
	next int64         // the size at which the next step is due
	kick chan struct{} // capacity 1: a step is due; nil before the first
	done chan struct{} // closed when the goroutine ended
	once sync.Once
}

func startWriteback(f *os.File) *writeback {
	return &writeback{f: f, next: writebackStep}
}

func (wb *writeback) run() {
	defer close(wb.done)
	for range wb.kick {
		// Errors are left to the commit's fsync, which reports them.
		_ = syncRange(wb.f)
	}
}

// grew tells the writeback the file holds n bytes of the blob.
func (wb *writeback) grew(n int64) {
	if n < wb.next {
		return
	}
	wb.next = n + writebackStep
	if wb.kick == nil {
		wb.kick, wb.done = make(chan struct{}, 1), make(chan struct{})
		go wb.run()
	}
	select {
	case wb.kick <- struct{}{}:
	default:
	}
}

// stop ends the writeback and waits for a step in progress, so the file
// may be closed.
func (wb *writeback) stop() {
	wb.once.Do(func() {
		if wb.kick != nil {
			close(wb.kick)
			<-wb.done
		}
	})
}
