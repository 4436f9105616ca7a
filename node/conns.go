package node

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"berth/registry"

	"go.uber.org/zap"
)

// refusalLogEvery spaces the log lines of a listener's refused
// connections: a client opening connections in a loop makes one a
// period, with the count.
const refusalLogEvery = 10 * time.Second

// connLimiter returns what caps the connections of listener name (its
// TCP listener; cfg is its TLS config, nil for plain HTTP): the config
// in force's maxConnections and maxConnectionsPerAddress, read at each
// accept, with the refusals counted and logged.
func (n *Node) connLimiter(name string, cfg *tls.Config) func(net.Listener) net.Listener {
	return func(ln net.Listener) net.Listener {
		var (
			mu      sync.Mutex
			last    time.Time
			refused int
		)
		cl := &registry.ConnListener{Listener: ln, TLS: cfg,
			Limits: func() registry.ConnLimits {
				c := n.Live().Config
				return registry.ConnLimits{Max: c.MaxConnections, PerAddress: c.MaxConnectionsPerAddress}
			},
		}
		cl.OnRefuse = func(addr, reason string) {
			n.metrics.ConnectionRefused(name, reason)
			mu.Lock()
			defer mu.Unlock()
			refused++
			if now := time.Now(); now.Sub(last) >= refusalLogEvery {
				n.log.Warn("connections refused: past maxConnections or maxConnectionsPerAddress",
					zap.String("listener", name), zap.String("client", addr), zap.String("limit", reason),
					zap.Int("refused", refused), zap.Int("open", cl.Open()))
				last, refused = now, 0
			}
		}
		n.metrics.ConnectionsOpen(name, func() float64 { return float64(cl.Open()) })
		return cl
	}
}
