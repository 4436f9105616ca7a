package node

import (
	"sync"

	"berth/config"
	"berth/upstream"
)

// bandwidth holds the upstream bandwidth caps: the node's and one per
// rule. A reload changes their rates in place, so fills already running
// follow the new caps.
type bandwidth struct {
	mu    sync.Mutex
	node  *upstream.Bandwidth
	rules map[string]*upstream.Bandwidth
}

// set applies the caps of rules and the node-wide cap, and returns the
// node's cap.
func (b *bandwidth) set(rules []config.Upstream, nodeRate int64) *upstream.Bandwidth {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.node == nil {
		b.node, b.rules = upstream.NewBandwidth(nodeRate), map[string]*upstream.Bandwidth{}
	}
	b.node.SetRate(nodeRate)
	seen := map[string]bool{}
	for _, r := range rules {
		seen[r.Name] = true
		if c := b.rules[r.Name]; c != nil {
			c.SetRate(r.UpstreamBandwidth)
		} else {
			b.rules[r.Name] = upstream.NewBandwidth(r.UpstreamBandwidth)
		}
	}
	for name, c := range b.rules {
		if !seen[name] {
			c.SetRate(0) // a removed rule's fills still running are no longer capped by it
			delete(b.rules, name)
		}
	}
	return b.node
}

// rule is the cap of the rule named name (after set).
func (b *bandwidth) rule(name string) *upstream.Bandwidth {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rules[name]
}
