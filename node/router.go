package node

import (
	"context"
	"time"

	"berth/admin"
	"berth/config"
	"berth/metrics"
	"berth/upstream"

	"go.uber.org/zap"
)

// buildRouter makes the upstream clients and the router for cfg, with the
// pull-through rules created through the admin API merged in. The
// top-level offline key makes every rule offline.
func (n *Node) buildRouter(ctx context.Context, cfg config.Config) (*upstream.Router, error) {
	rules, err := admin.MergeRules(ctx, n.store, cfg.Upstreams, cfg.Local.Prefixes)
	if err != nil {
		n.log.Warn("stored pull-through cache rules not loaded", zap.Error(err))
	}
	var ups []*upstream.Upstream
	node := n.bw.set(rules, cfg.UpstreamBandwidth)
	for _, r := range rules {
		r.Offline = r.Offline || cfg.Offline
		if r.InsecureSkipVerify {
			n.log.Warn("upstream certificates are not verified (insecureSkipVerify): anyone on the path can read and change what it serves",
				zap.String("upstream", r.Name))
		}
		base, err := upstream.DefaultTransport(r)
		if err != nil {
			return nil, err
		}
		u, err := upstream.New(r, n.metrics.Transport(r.Name, base), n.log.Named("upstream"),
			upstream.WithBandwidth(n.bw.rule(r.Name), node))
		if err != nil {
			return nil, err
		}
		ups = append(ups, u)
	}
	router := upstream.NewRouter(ups, cfg.Local.Prefixes...)
	n.upstreamMetrics(router)
	return router, nil
}

// upstreamMetrics points the per-upstream quota metrics at the current
// clients; an upstream's series are registered once, at its first sight.
func (n *Node) upstreamMetrics(router *upstream.Router) {
	for _, u := range router.Upstreams() {
		name := u.Rule.Name
		n.upMu.Lock()
		first := n.ups == nil || n.ups[name] == nil
		if n.ups == nil {
			n.ups = map[string]*upstream.Upstream{}
			n.metrics.Endpoints(n.endpointSamples)
		}
		n.ups[name] = u
		n.upMu.Unlock()
		if !first {
			continue
		}
		cur := func() *upstream.Upstream { n.upMu.Lock(); defer n.upMu.Unlock(); return n.ups[name] }
		n.metrics.UpstreamFuncs(name,
			func() float64 { return float64(cur().Throttled()) },
			func() float64 {
				if until, ok := cur().Backoff(); ok {
					return time.Until(until).Seconds()
				}
				return 0
			},
			func() float64 {
				if n, ok := cur().RateLimitRemaining(); ok {
					return float64(n)
				}
				return -1
			})
		n.metrics.UpstreamPaced(name, func() float64 { return cur().Paced().Seconds() })
	}
}

// endpointSamples is the health of every endpoint of the current
// upstream clients, for the per-endpoint metrics.
func (n *Node) endpointSamples() []metrics.EndpointSample {
	n.upMu.Lock()
	ups := make([]*upstream.Upstream, 0, len(n.ups))
	for _, u := range n.ups {
		ups = append(ups, u)
	}
	n.upMu.Unlock()
	var out []metrics.EndpointSample
	for _, u := range ups {
		for _, e := range u.Endpoints() {
			s := metrics.EndpointSample{Upstream: u.Rule.Name, Endpoint: e.URL, Up: e.Healthy, Failures: e.Failures, Requests: e.Requests}
			if !e.Backoff.IsZero() {
				s.BackoffSeconds = max(time.Until(e.Backoff).Seconds(), 0)
			}
			out = append(out, s)
		}
	}
	return out
}
