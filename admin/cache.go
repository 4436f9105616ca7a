package admin

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func (s *Service) describeCache(_ context.Context, _ *DescribeCacheRequest) (*DescribeCacheResponse, error) {
	st := s.o.Store.Stats()
	out := &DescribeCacheResponse{Store: StoreStats{Bytes: st.BlobBytes, Blobs: st.Blobs}, Upstreams: []UpstreamStats{}}
	if s.o.Stats != nil {
		c := s.o.Stats.CacheCounters()
		out.Requests = &RequestStats{Hits: c.Hits, Misses: c.Misses, Revalidated: c.Revalidated, Stale: c.Stale, HitRatio: c.HitRatio()}
		out.Evictions = &EvictionStats{Blobs: c.EvictedBlobs}
	}
	// The counts are the latest background pass's (see storeCounter):
	// a request never walks the store.
	counts := s.counts.last.Load()
	if counts == nil {
		counts = &storeCounts{}
	} else {
		out.CountsAsOf = &counts.asOf
	}
	out.Local = counts.local
	byUp := map[string]*UpstreamStats{}
	var order []string
	for _, r := range s.rules() {
		byUp[r.Name] = &UpstreamStats{Name: r.Name, Prefix: r.Prefix, RepositoryStats: counts.cached[r.Name]}
		order = append(order, r.Name)
	}
	var gone []string // cached under rules no longer configured
	for name := range counts.cached {
		if byUp[name] == nil {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		byUp[name] = &UpstreamStats{Name: name, RepositoryStats: counts.cached[name]}
		order = append(order, name)
	}
	for _, name := range order {
		out.Upstreams = append(out.Upstreams, *byUp[name])
	}
	return out, nil
}

func (s *Service) startGC(ctx context.Context, req *StartGCRequest) (*StartGCResponse, error) {
	grace := s.live().GCGrace
	if req.GracePeriod != "" {
		d, err := time.ParseDuration(req.GracePeriod)
		if err != nil || d < 0 {
			return nil, invalidf("gracePeriod", "%q is not a duration such as 1h", req.GracePeriod)
		}
		grace = d
	}
	c, err := s.sharedGC(ctx, grace)
	if err != nil {
		return nil, err
	}
	return &StartGCResponse{GCReport: c.rep, DurationSeconds: c.took.Seconds()}, nil
}

// HitRatio is the share of lookups served from the store (hits,
// revalidated and stale); 0 without lookups.
func (c CacheCounters) HitRatio() float64 {
	total := c.Hits + c.Misses + c.Revalidated + c.Stale
	if total == 0 {
		return 0
	}
	return float64(c.Hits+c.Revalidated+c.Stale) / float64(total)
}

// PromStats reads the cache counters from a node's Prometheus registry:
// berth_cache_requests_total by result, and berth_evictions_total.
func PromStats(g prometheus.Gatherer) StatsSource { return promStats{g} }

type promStats struct{ g prometheus.Gatherer }

func (p promStats) CacheCounters() CacheCounters {
	var c CacheCounters
	mfs, err := p.g.Gather()
	if err != nil && len(mfs) == 0 {
		return c
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "berth_cache_requests_total":
			for _, m := range mf.GetMetric() {
				v := int64(m.GetCounter().GetValue())
				for _, l := range m.GetLabel() {
					if l.GetName() != "result" {
						continue
					}
					switch l.GetValue() {
					case "hit":
						c.Hits += v
					case "miss":
						c.Misses += v
					case "revalidated":
						c.Revalidated += v
					case "stale":
						c.Stale += v
					}
				}
			}
		case "berth_evictions_total":
			for _, m := range mf.GetMetric() {
				c.EvictedBlobs += int64(m.GetCounter().GetValue())
			}
		}
	}
	return c
}
