package node

import (
	"context"
	"sync"

	"berth/vulndb"

	"go.uber.org/zap"
)

// vulnSync imports scanning.vulnDB in the background: at start, and when
// a reload kicks it. One worker, so reloads in a row coalesce into one
// check, and an import never holds up a start or a reload.
type vulnSync struct {
	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// openVulnDB opens the node's vulnerability database and starts the
// worker that imports scanning.vulnDB.
func (n *Node) openVulnDB(ctx context.Context) error {
	db, err := vulndb.Open(ctx, vulndb.Options{Store: n.store, Registerer: n.prom, Logger: n.log.Named("vulndb")})
	if err != nil {
		return err
	}
	n.vulndb = db
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.vsync = &vulnSync{kick: make(chan struct{}, 1), cancel: cancel}
	n.vsync.wg.Add(1)
	go n.syncVulnDB(base)
	n.closers = append(n.closers, func() {
		n.vsync.cancel()
		n.vsync.wg.Wait()
	})
	n.kickVulnDB()
	return nil
}

// VulnDB is the node's vulnerability database.
func (n *Node) VulnDB() *vulndb.DB { return n.vulndb }

// kickVulnDB asks the worker to check scanning.vulnDB; it never blocks.
func (n *Node) kickVulnDB() {
	select {
	case n.vsync.kick <- struct{}{}:
	default: // a check is pending already
	}
}

func (n *Node) syncVulnDB(ctx context.Context) {
	defer n.vsync.wg.Done()
	log := n.log.Named("vulndb")
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.vsync.kick:
		}
		path := n.Live().Config.Scanning.VulnDB
		if path == "" {
			continue
		}
		imported, info, err := n.vulndb.SyncPath(ctx, path)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("scanning.vulnDB not imported; the database served stays", zap.String("path", path), zap.Error(err))
		case err == nil && !imported:
			log.Debug("scanning.vulnDB unchanged", zap.String("path", path), zap.Uint64("version", info.Version))
		}
	}
}
