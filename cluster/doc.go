// Package cluster makes several Berth nodes at a site act as one mirror:
// membership by gossip (hashicorp/memberlist), key ownership by
// rendezvous hashing, and an authenticated HTTP API between peers.
//
// # Membership
//
//	c, err := cluster.Start(ctx, cluster.Config{
//		NodeName:   "mirror-1",
//		GossipAddr: "10.0.0.1:7946",
//		PeerAddr:   "10.0.0.1:5001",
//		Join:       []string{"10.0.0.2:7946", "10.0.0.3:7946"},
//		Secret:     secret, // cluster.LoadSecret(path)
//	}, log, cluster.WithVersion(version), cluster.WithStats(stats, 0))
//	defer c.Shutdown(shutdownCtx)
//
// Start binds GossipAddr (TCP and UDP) and returns at once; joining the
// seeds in Join runs in the background, retried with exponential backoff
// (200 ms to 10 s, jittered) until one answers, then every 30 s for seeds
// that are not alive members, which brings back an isolated node and
// merges partitions. The ctx given to Start bounds that loop.
//
// Each node publishes metadata (compact JSON in memberlist's NodeMeta:
// peer address, version, NodeStats, a leaving flag), refreshed when
// WithStats reports a change. Members lists what this node knows: alive
// members, and for ten minutes dead ("failed") and left ("graceful
// shutdown") ones. memberlist v0.7.0 does not expose suspicion, so a
// suspected node counts as alive until it is declared dead. Each change is
// logged at debug level; WithOwnersChanged's hook hears of each join and
// leave (the changes that move owners) and must not block.
//
// Shutdown first flags the node as leaving (peers mark it left and stop
// choosing it as an owner), then broadcasts memberlist's leave, then
// stops. A node restarted with the same name and address rejoins at once.
//
// # Ownership
//
// Owners(key) ranks the alive members by xxhash64(name + "\x00" + key),
// highest first (ties by name), and returns the top Config.Replicas
// (default 2). Every node with the same membership computes the same
// owners; when a node goes, only the keys it owned move, and a new node
// takes about 1/n of the keys.
//
// # Peer API
//
// PeerClient signs every request with an HMAC-SHA256 over the method,
// request URI, sender name and time (headers X-Berth-Peer,
// X-Berth-Peer-Time and "Authorization: Berth-Peer <hex>"); RequirePeer
// checks the signature and a clock skew of at most five minutes, answers
// 401 with {"errors":[{"code":"UNAUTHORIZED",...}]} otherwise, and tells
// handlers the sender through FromPeer. Bodies are not signed and a
// signature can be replayed within the skew window, so peer endpoints
// should be read-only. MembersHandler serves this node's view as JSON.
//
// Every answer of RequirePeer, a refusal too, carries the node's clock
// (X-Berth-Time); RequirePeer itself answers GET /cluster/clock with 204.
// Clocks asks every other alive member for its time and reports each
// offset (their clock minus ours at the middle of the round trip), and
// ClocksHandler serves that as JSON for berth doctor.
//
// # Secret
//
// Config.Secret (32 bytes; LoadSecret reads 64 hex characters or 32 raw
// bytes) is required. Two keys are derived from it: an AES-256 key for
// memberlist's gossip encryption (so nodes without the secret cannot
// join) and the peer-API HMAC key.
package cluster
