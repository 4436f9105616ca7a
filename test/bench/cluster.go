package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clusterNode is one berth process of a bench cluster: its registry and
// admin listeners on 127.0.0.1, gossip and peer listeners on a loopback
// address of its own (127.0.0.<i+1>), as test/e2e starts them.
type clusterNode struct {
	*berthProc
	name, gossip, peer string
}

// freePortOn finds a port free for both TCP and UDP on host (memberlist
// binds both).
func freePortOn(host string) (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for TCP and UDP on %s", host)
}

// startCluster starts n fresh berth nodes joined into one cluster (replicas
// 2, log level info so that the peer listeners' request lines can be
// counted) and waits until every node sees n alive members. It returns how
// long that took from the first process start.
func (h *harness) startCluster(ctx context.Context, n int) ([]*clusterNode, time.Duration, error) {
	secret := filepath.Join(h.tmp, "cluster.key")
	if err := os.WriteFile(secret, []byte(strings.Repeat("5e", 32)+"\n"), 0o600); err != nil {
		return nil, 0, err
	}
	nodes := make([]*clusterNode, n)
	var join []string
	for i := range nodes {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		onHost := func() (int, error) { return freePortOn(host) }
		gp, err := h.ports.take(onHost)
		if err != nil {
			return nil, 0, err
		}
		pp, err := h.ports.take(onHost)
		if err != nil {
			return nil, 0, err
		}
		nodes[i] = &clusterNode{name: fmt.Sprintf("node%d", i),
			gossip: net.JoinHostPort(host, strconv.Itoa(gp)), peer: net.JoinHostPort(host, strconv.Itoa(pp))}
		join = append(join, strconv.Quote(nodes[i].gossip))
	}
	t0 := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			extra := fmt.Sprintf("cluster:\n  nodeName: %s\n  gossipAddr: %q\n  peerAddr: %q\n  secretFile: %q\n  replicas: 2\n  join: [%s]\n",
				nd.name, nd.gossip, nd.peer, secret, strings.Join(join, ", "))
			nd.berthProc, errs[i] = h.startBerth(ctx, berthOpts{admin: true, logLevel: "info", extra: extra})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		stopCluster(nodes)
		return nil, 0, err
	}
	if err := waitAlive(ctx, nodes, n, 20*time.Second); err != nil {
		stopCluster(nodes)
		return nil, 0, err
	}
	return nodes, time.Since(t0), nil
}

// stopCluster stops the nodes that started, all at once. One after the
// other takes longer: each leave waits for its broadcast to go round
// (0.6–1.6 s here), and a node's HTTP shutdown sometimes waits 5 s more for
// a peer's unused keep-alive connection to it (net/http gives a connection
// that never sent a request that long). All at once, a leave broadcast may
// time out; that is logged and not counted (see readNodeLog).
func stopCluster(nodes []*clusterNode) {
	var wg sync.WaitGroup
	for _, nd := range nodes {
		if nd == nil || nd.berthProc == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); nd.Stop() }()
	}
	wg.Wait()
}

// waitAlive waits until every node sees want alive members.
func waitAlive(ctx context.Context, nodes []*clusterNode, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, nd := range nodes {
		for {
			got, err := aliveMembers(ctx, nd)
			if got == want {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s sees %d alive members after %s, want %d (%v):\n%s", nd.name, got, limit, want, err, nd.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// aliveMembers counts the members nd's admin listener reports alive.
func aliveMembers(ctx context.Context, nd *clusterNode) (int, error) {
	var body struct {
		Members []struct{ Name, State string }
	}
	if err := getJSON(ctx, nd.AdminURL+"/cluster/members", &body); err != nil {
		return -1, err
	}
	n := 0
	for _, m := range body.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n, nil
}

// servedBySource reads berth_bytes_served_total by source from a node's
// metrics.
func servedBySource(ctx context.Context, b *berthProc) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.AdminURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readAllLimit(resp.Body, 4<<20)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s/metrics: %d", b.AdminURL, resp.StatusCode)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(l, `berth_bytes_served_total{source="`)
		if !ok {
			continue
		}
		src, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", l, err)
		}
		out[src] = v
	}
	return out, nil
}

// nodeLog is what a node's log says about its peer listener and problems.
type nodeLog struct {
	PeerBlobBytes, PeerManifestBytes int64 // response bytes of 200 and 206 answers the peer listener sent
	PeerRequests, PeerAborted        int
	PeerStatus                       map[int]int
	Problems                         []string // warn and error lines
}

// readNodeLog parses a node's JSON log: the peer listener's request lines
// (logger "peer", level info) for repository repo, and the warn and error
// lines logged from `from` until `to`. Before, the nodes were starting at
// the same moment (joins fail until the others listen); after, they were
// being stopped at the same moment.
func readNodeLog(path, repo string, from, to time.Time) (nodeLog, error) {
	nl := nodeLog{PeerStatus: map[int]int{}}
	f, err := os.Open(path)
	if err != nil {
		return nl, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Level   string    `json:"level"`
			TS      time.Time `json:"ts"`
			Logger  string    `json:"logger"`
			Msg     string    `json:"msg"`
			Path    string    `json:"path"`
			Status  int       `json:"status"`
			Bytes   int64     `json:"bytes"`
			Aborted bool      `json:"aborted"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch {
		case l.Logger == "peer" && l.Msg == "request" && strings.Contains(l.Path, "/"+repo+"/"):
			nl.PeerRequests++
			nl.PeerStatus[l.Status]++
			if l.Aborted {
				nl.PeerAborted++
			}
			switch {
			case l.Status != http.StatusOK && l.Status != http.StatusPartialContent:
				// An error's body (a first owner asking a replica
				// that has no copy gets 404) is no image bytes.
			case strings.Contains(l.Path, "/blobs/"):
				nl.PeerBlobBytes += l.Bytes
			default:
				nl.PeerManifestBytes += l.Bytes
			}
		case l.Level == "warn" || l.Level == "error" || l.Level == "fatal" || l.Level == "panic":
			if !l.TS.Before(from) && l.TS.Before(to) {
				nl.Problems = append(nl.Problems, sc.Text())
			}
		}
	}
	return nl, sc.Err()
}

// stormClient is newClient with a dial timeout long enough for a machine
// busy with the storm itself: on two cores shared with other work, a
// hundred clients connecting at once to nine nodes saw connects time out
// after newClient's 5 s, and one such client failed the whole scenario.
func stormClient(conns int) *http.Client {
	c := newClient(conns)
	c.Transport.(*http.Transport).DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return c
}

// stormResult is one morning storm as the clients saw it.
type stormResult struct {
	Wall  time.Duration   // first request to the last client done
	Pulls []time.Duration // per client
	Bytes int64
}

// imageStorm starts n clients at once, client i pulling the image from
// bases[i%len(bases)] with par blob fetches; each client has connections of
// its own, like separate hosts. The first client on each base checks every
// digest it receives.
func (h *harness) imageStorm(ctx context.Context, bases []string, n, par int) (stormResult, error) {
	clients := make([]*http.Client, n)
	for i := range clients {
		clients[i] = stormClient(par + 1)
	}
	defer func() {
		for _, c := range clients {
			closeIdle(c)
		}
	}()
	res := make([]pullResult, n)
	errs := make([]error, n)
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate
			res[i], errs[i] = pullImage(ctx, clients[i], bases[i%len(bases)], imageRepo, "v1", par, i < len(bases))
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	out := stormResult{Wall: time.Since(start)}
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("%d of %d clients failed, the first: %w", len(failed), n, failed[0])
	}
	for _, r := range res {
		out.Pulls = append(out.Pulls, r.Wall)
		out.Bytes += r.Bytes
	}
	return out, nil
}
