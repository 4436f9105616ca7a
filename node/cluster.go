package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"berth/cluster"
	"berth/config"

	"go.uber.org/zap"
)

// peerTLSConfigs builds the server side (client certificates required, from the
// CA) and the client side (the CA as roots, this node's certificate).
func peerTLSConfigs(c config.PeerTLS) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.tls: %w", err)
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster.tls.caFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("cluster.tls.caFile: no certificate in %s", c.CAFile)
	}
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}
	return server, client, nil
}

// startCluster joins the gossip cluster; its context must live as long as
// the node.
func startCluster(ctx context.Context, c config.Cluster, peerTLS *tls.Config, stats func() cluster.NodeStats, version string, log *zap.Logger, opts ...cluster.Option) (*cluster.Cluster, error) {
	secret, err := cluster.LoadSecret(c.SecretFile)
	if err != nil {
		return nil, err
	}
	name := c.NodeName
	if name == "" {
		name, _ = os.Hostname()
	}
	replicas := c.Replicas
	if replicas == 0 {
		replicas = 2
	}
	return cluster.Start(ctx, cluster.Config{
		NodeName: name, GossipAddr: c.GossipAddr, AdvertiseAddr: c.AdvertiseAddr, PeerAddr: c.PeerAddr,
		Join: c.Join, Secret: secret, Replicas: replicas, PeerTLS: peerTLS,
	}, log, append([]cluster.Option{cluster.WithStats(stats, 0), cluster.WithVersion(version)}, opts...)...)
}

// ownerNames names the members that own digest.
func (n *Node) ownerNames(digest string) []string {
	owners := n.cluster.Owners(digest)
	names := make([]string, len(owners))
	for i, m := range owners {
		names[i] = m.Name
	}
	return names
}
