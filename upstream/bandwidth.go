package upstream

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// paceChunk is the most a blob read takes from a bandwidth cap at once.
// Every fill draws its bytes in pieces of at most this size, one wait
// each, and the caps answer waits in turn, so concurrent fills share a
// cap evenly.
const paceChunk = 16 << 10

// Bandwidth is a cap on the bytes per second that fills draw from
// upstreams: one per rule (upstreamBandwidth) and one for the node. Its
// rate changes in place at a reload, for the fills running too.
type Bandwidth struct {
	lim *rate.Limiter
}

// NewBandwidth returns a cap of bytesPerSecond (0 or less: none).
func NewBandwidth(bytesPerSecond int64) *Bandwidth {
	b := &Bandwidth{lim: rate.NewLimiter(rate.Inf, paceChunk)}
	b.SetRate(bytesPerSecond)
	return b
}

// SetRate changes the cap (0 or less: none).
func (b *Bandwidth) SetRate(bytesPerSecond int64) {
	if bytesPerSecond <= 0 {
		b.lim.SetLimit(rate.Inf)
		return
	}
	b.lim.SetLimit(rate.Limit(bytesPerSecond))
}

// Rate is the cap in bytes per second, 0 for none.
func (b *Bandwidth) Rate() int64 {
	if l := b.lim.Limit(); l != rate.Inf {
		return int64(math.Round(float64(l)))
	}
	return 0
}

// WithBandwidth paces the client's blob downloads by every cap given (the
// rule's and the node's); nil caps are left out.
func WithBandwidth(caps ...*Bandwidth) Option {
	return func(u *Upstream) {
		for _, c := range caps {
			if c != nil {
				u.caps = append(u.caps, c)
			}
		}
	}
}

// Paced is the time the client's blob downloads spent waiting for a
// bandwidth cap.
func (u *Upstream) Paced() time.Duration { return time.Duration(u.quota.paced.Load()) }

// readSize is how much a read may ask for: a piece while a cap limits
// the client, else all of n. A cap set to none (the node-wide one, say)
// must not cut an unpaced fill into pieces: each costs a read, a write of
// the blob file and a wake of the fill's readers.
func (u *Upstream) readSize(n int) int {
	for _, c := range u.caps {
		if c.Rate() > 0 {
			return min(n, paceChunk)
		}
	}
	return n
}

// pace waits until every cap lets n (at most paceChunk) more bytes through, counting the time
// waited; it fails only when ctx ends.
func (u *Upstream) pace(ctx context.Context, n int) error {
	if len(u.caps) == 0 || n == 0 {
		return nil
	}
	start := time.Now()
	defer func() { u.quota.paced.Add(int64(time.Since(start))) }()
	for _, c := range u.caps {
		if err := c.lim.WaitN(ctx, n); err != nil {
			return err
		}
	}
	return nil
}
