package registry

import (
	"errors"
	"net/http"
	"os"
	"time"
)

// Request bodies of uploads must keep coming: a read that waits longer than
// BodyIdle, or a body slower on average than BodyMinRate once BodyIdle has
// passed, ends the request with 400 BLOB_UPLOAD_INVALID. So a client that
// trickles (or stops) cannot hold a connection, or its session's lock, for
// long. The defaults suit thin links: 30 s of silence, 1 KiB/s on average.
const (
	DefaultBodyIdle    = 30 * time.Second
	DefaultBodyMinRate = 1024 // bytes per second
)

// WithBodyPace sets how long a body may stall and its minimum average rate.
func WithBodyPace(idle time.Duration, minRate int64) Option {
	return func(s *Server) { s.bodyIdle, s.bodyMinRate = idle, minRate }
}

// bodyPace keeps a request body's read deadline moving with its progress.
type bodyPace struct {
	rc      *http.ResponseController
	start   time.Time
	idle    time.Duration
	minRate int64
}

func newBodyPace(w *recorder, now time.Time) *bodyPace {
	return &bodyPace{rc: http.NewResponseController(w), start: now, idle: w.bodyIdle, minRate: w.bodyMinRate}
}

// before is called before each read with the bytes read so far: it refuses
// a body behind its minimum rate and gives the next read idle more time.
func (p *bodyPace) before(n int64, now time.Time) *Error {
	if p == nil || p.idle <= 0 {
		return nil
	}
	if el := now.Sub(p.start); el > p.idle && p.minRate > 0 && float64(n) < float64(p.minRate)*el.Seconds() {
		return p.tooSlow()
	}
	_ = p.rc.SetReadDeadline(now.Add(p.idle)) // not every writer supports it (tests)
	return nil
}

// expired says whether a read failed on the deadline before set.
func (p *bodyPace) expired(err error) bool {
	return p != nil && p.idle > 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

func (p *bodyPace) tooSlow() *Error {
	return Errorf(http.StatusBadRequest, CodeBlobUploadInvalid,
		"the request body stalled for %s or came slower than %d bytes/s; send it again on a steadier connection",
		p.idle, p.minRate)
}
