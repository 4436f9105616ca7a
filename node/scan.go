package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"berth/config"
	"berth/scan"
	"berth/store"
	"berth/syncer"
	"berth/upstream"

	"go.uber.org/zap"
)

// openScanner starts the image scanner's background pool. Its scratch
// directories live in <dataDir>/scan-tmp, emptied at start (a scan a
// crash cut short leaves its files there).
func (n *Node) openScanner(ctx context.Context, cfg config.Config) error {
	dir := filepath.Join(cfg.DataDir, "scan-tmp")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("empty the scanner's scratch directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the scanner's scratch directory: %w", err)
	}
	s, err := scan.New(scan.Options{Store: n.store, DB: n.vulndb, TempDir: dir, Fill: n.fillForScan,
		Settings: func() config.Scanning { return n.Live().Config.Scanning }, Registerer: n.prom, Logger: n.log.Named("scan")})
	if err != nil {
		return err
	}
	if err := s.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	n.scan = s
	n.closers = append(n.closers, s.Close)
	return nil
}

// keepScanPool keeps scanning.workers and scanning.queueSize as they are
// in force, and warns when the file asks for others: the scanner's pool
// and queue are sized at start. The rest of scanning is read live.
func (n *Node) keepScanPool(old config.Config, cfg *config.Config) {
	o, c := old.Scanning, &cfg.Scanning
	if c.Workers == o.Workers && c.QueueSize == o.QueueSize {
		return
	}
	n.log.Warn("scanning.workers and scanning.queueSize changes take effect at the next restart",
		zap.Int("workers", o.Workers), zap.Int("queueSize", o.QueueSize))
	c.Workers, c.QueueSize = o.Workers, o.QueueSize
}

// Scanner is the node's image scanner.
func (n *Node) Scanner() *scan.Scanner { return n.scan }

// fillForScan pulls what the store lacks of a cached image through the
// node's backend, as a client pull (and warm) would.
func (n *Node) fillForScan(ctx context.Context, repo store.RepoKey, digest string) error {
	u := n.Live().Router.Upstream(repo.Upstream)
	if u == nil {
		return fmt.Errorf("the upstream rule %q is no longer configured", repo.Upstream)
	}
	_, err := n.sync.Fill(ctx, syncer.Repo(upstream.Target{Upstream: u, Repo: repo.Name}), digest, nil)
	return err
}

// manifestPulled is the proxy's hook after a pull stored a manifest of a
// cached repository: scanning.scanOnPull decides.
func (n *Node) manifestPulled(t upstream.Target, digest, mediaType string) {
	if n.scan != nil {
		n.scan.Pulled(store.CachedKey(t.Upstream.Rule.Name, t.Repo), t.Canonical(), digest, mediaType)
	}
}

// manifestPushed is the backend's hook after a push to a local
// repository: the repository's scanning configuration, or the node's
// scanOnPush, decides.
func (n *Node) manifestPushed(ctx context.Context, repo, digest string) {
	if n.scan != nil {
		n.scan.Pushed(ctx, repo, digest)
	}
}
