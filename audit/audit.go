// Package audit writes Berth's audit log: one JSON line per API action that
// reads or changes content, like CloudTrail's event history. Writing is off
// the hot path: Log hands the event to a buffered channel and never blocks;
// when the disk is too slow and the buffer is full, events are dropped and
// counted. The file is rotated by size.
package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"berth/registry"

	"go.uber.org/zap"
)

// Event is one audit record.
type Event struct {
	Time      time.Time `json:"time"`
	Principal string    `json:"principal"`
	// User is the name a failed login presented.
	User       string `json:"attemptedUser,omitempty"`
	SourceIP   string `json:"sourceIP"`
	Action     string `json:"action"`
	Repository string `json:"repository,omitempty"`
	// Target is what an admin action acted on, when it names no repository.
	Target    string `json:"target,omitempty"`
	Reference string `json:"reference,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Result    string `json:"result"`
	Status    int    `json:"status"`
	Bytes     int64  `json:"bytes"`
}

// Options configure the log.
type Options struct {
	// MaxBytes rotates the file when it grows past this size.
	MaxBytes int64
	// Keep is how many rotated files are kept (path.1 … path.N).
	Keep int
	// Buffer is how many events may wait for the writer.
	Buffer int
	Logger *zap.Logger
}

// Log is an open audit log.
type Log struct {
	path    string
	opts    Options
	log     *zap.Logger
	events  chan Event
	dropped atomic.Int64
	written atomic.Int64
	done    chan struct{}
	once    sync.Once
}

// Open starts writing to path.
func Open(path string, opts Options) (*Log, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 100 << 20
	}
	if opts.Keep <= 0 {
		opts.Keep = 5
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{path: path, opts: opts, log: opts.Logger, events: make(chan Event, opts.Buffer), done: make(chan struct{})}
	go l.run(f)
	return l, nil
}

// Log records an event without blocking.
func (l *Log) Log(e Event) {
	// What waits in memory and stays in the file holds at most
	// registry.Clip of a text a client chose: a failed login's user name,
	// a token request's scopes or an admin request's path (its action)
	// run to the header limit (1 MB).
	for _, f := range []*string{&e.Principal, &e.User, &e.Action, &e.Target, &e.Repository, &e.Reference, &e.Digest} {
		*f = registry.Clip(*f)
	}
	select {
	case l.events <- e:
	default:
		if l.dropped.Add(1)%1000 == 1 {
			l.log.Warn("audit log is behind; dropping events", zap.Int64("dropped", l.dropped.Load()))
		}
	}
}

// Dropped is how many events were dropped because the writer was behind.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Written is how many events were written.
func (l *Log) Written() int64 { return l.written.Load() }

// Close writes what is buffered and closes the file.
func (l *Log) Close(ctx context.Context) error {
	l.once.Do(func() { close(l.events) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Log) run(f *os.File) {
	defer close(l.done)
	size := int64(0)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var b []byte
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	defer func() { w.Flush(); f.Close() }()
	for {
		select {
		case e, ok := <-l.events:
			if !ok {
				return
			}
			var good bool
			if b, good = appendEvent(b[:0], &e); !good {
				continue
			}
			b = append(b, '\n')
			if size+int64(len(b)) > l.opts.MaxBytes && size > 0 {
				w.Flush()
				f.Close()
				if nf, err := l.rotate(); err != nil {
					l.log.Error("audit log rotation failed", zap.Error(err))
					if nf == nil {
						return
					}
					f = nf
				} else {
					f = nf
				}
				w.Reset(f)
				size = 0
			}
			n, err := w.Write(b)
			size += int64(n)
			if err != nil {
				l.log.Error("audit log write failed", zap.Error(err))
				continue
			}
			l.written.Add(1)
		case <-flush.C:
			w.Flush()
		}
	}
}

// rotate shifts path.N-1 → path.N … path → path.1 and opens a new path.
func (l *Log) rotate() (*os.File, error) {
	for i := l.opts.Keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
	}
	err := os.Rename(l.path, l.path+".1")
	f, oerr := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if oerr != nil {
		return nil, oerr
	}
	return f, err
}
