package main

import (
	"errors"
	"sync"
)

// portBook remembers the ports a run handed out, so that a port picked for
// one server and not bound yet is not picked again for another. A cluster's
// gossip and peer ports are picked before its nodes start, all at once, and
// a node's admin port picked after that once got node0's gossip port: the
// node answered /v2/, joined the cluster, and then exited on "bind: address
// already in use", its admin port answering as memberlist.
type portBook struct {
	mu   sync.Mutex
	used map[int]bool
}

// take returns a port from pick that the book has not handed out yet, and
// books it.
func (b *portBook) take(pick func() (int, error)) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used == nil {
		b.used = map[int]bool{}
	}
	for i := 0; i < 100; i++ {
		p, err := pick()
		if err != nil {
			return 0, err
		}
		if !b.used[p] {
			b.used[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port that this run has not handed out already (100 tries)")
}
