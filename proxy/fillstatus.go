package proxy

import (
	"slices"
	"sync"
	"time"
)

// FillStatus is one blob fill as the status page shows it: running, or
// one of the last to finish.
type FillStatus struct {
	Digest   string `json:"digest"`
	Upstream string `json:"upstream"`
	// Repository is the upstream's name of the repository it is filled for.
	Repository string `json:"repository"`
	// Source is where the bytes come from now ("upstream hub", "peer b").
	Source string `json:"source,omitempty"`
	// Size is -1 until the source answered.
	Size      int64      `json:"size"`
	Written   int64      `json:"written"`
	StartedAt time.Time  `json:"startedAt"`
	Done      *time.Time `json:"doneAt,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// recentFills is how many finished fills Fills reports.
const recentFills = 20

// fillLog remembers what each running fill is for and the last fills that
// finished.
type fillLog struct {
	mu      sync.Mutex
	running map[*fill]FillStatus
	recent  []FillStatus // oldest first
}

// begin records that f runs for repo of upstream.
func (g *fillGroup) begin(f *fill, upstream, repo string, now time.Time) {
	g.log.mu.Lock()
	defer g.log.mu.Unlock()
	if g.log.running == nil {
		g.log.running = map[*fill]FillStatus{}
	}
	g.log.running[f] = FillStatus{Digest: f.digest, Upstream: upstream, Repository: repo, StartedAt: now}
}

// finish takes f out of the fills in flight and records how it ended.
func (g *fillGroup) finish(f *fill, err error, now time.Time) {
	g.remove(f)
	g.log.mu.Lock()
	defer g.log.mu.Unlock()
	st, ok := g.log.running[f]
	if !ok {
		return
	}
	delete(g.log.running, f)
	f.mu.Lock()
	st.Size, st.Written = f.size, f.written
	if f.src != nil {
		st.Source = f.src.String()
	}
	f.mu.Unlock()
	st.Done = &now
	if err != nil {
		st.Error = err.Error()
	}
	g.log.recent = append(g.log.recent, st)
	if len(g.log.recent) > recentFills {
		g.log.recent = slices.Delete(g.log.recent, 0, len(g.log.recent)-recentFills)
	}
}

// Fills lists the blob fills running on this node, oldest first, with the
// bytes written so far, then the last ones that finished, newest first.
func (p *Proxy) Fills() []FillStatus {
	g := &p.fills
	g.log.mu.Lock()
	fills := make([]*fill, 0, len(g.log.running))
	for f := range g.log.running {
		fills = append(fills, f)
	}
	running := make([]FillStatus, 0, len(fills))
	for _, f := range fills {
		st := g.log.running[f]
		f.mu.Lock()
		st.Size, st.Written = f.size, f.written
		if f.src != nil {
			st.Source = f.src.String()
		}
		f.mu.Unlock()
		running = append(running, st)
	}
	recent := slices.Clone(g.log.recent)
	g.log.mu.Unlock()
	slices.SortFunc(running, func(a, b FillStatus) int { return a.StartedAt.Compare(b.StartedAt) })
	slices.Reverse(recent)
	return append(running, recent...)
}
