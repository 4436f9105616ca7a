package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// clusterReplicas is cluster.replicas in the bench nodes' config.
const clusterReplicas = 2

// clusterSize is what scenario 8 gathers for one cluster size over its runs.
type clusterSize struct {
	nodes                                        int
	wall, med, p99, gets, mans, peer, peerX, via *Row
	up, nodeCPU, upCPU, dirCPU                   Sample
	bySource                                     map[string]*Sample
	problems                                     []string
	peerStatus                                   map[int]int
	peerAborted                                  int
}

// peerBound is the most bytes between peers a storm on n nodes may cost,
// in images: the (replicas + 1), raised to n - 1 where every node
// has clients of its own and must receive each blob once to serve them.
func peerBound(n int) float64 { return float64(max(clusterReplicas+1, n-1)) }

func nodesLabel(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// 8. Cluster morning storm, on each cluster size.
func (h *harness) cluster(ctx context.Context, s *Section) error {
	c := h.cfg
	if !h.admin {
		return errors.New("this berth has no admin listener: cluster membership and metrics cannot be read")
	}
	var m imageManifest
	if err := json.Unmarshal(h.image.Body, &m); err != nil {
		return err
	}
	descs := append([]descriptor{m.Config}, m.Layers...)
	var blobBytes int64
	for _, d := range descs {
		blobBytes += d.Size
	}
	n := c.ClusterClients
	s.Intro = fmt.Sprintf("%d clients, round-robin over %s fresh Berth nodes joined into one cluster (replicas %d, gossip and "+
		"peer listeners on 127.0.0.1, 127.0.0.2, …), pull the same cold image at the same moment like containerd: the %d-layer "+
		"image of scenario 6 (%s of blobs), the manifest by tag, then the config and the layers with %d fetches in parallel, each "+
		"client on connections of its own. Before each run every node sees all members alive and has answered one manifest "+
		"request for another repository; each run has fresh nodes and data directories, and the sizes take turns. Against the "+
		"same %d clients pulling from the upstream directly, right before each cluster run. Wall time is from the start to the last "+
		"client done; p99 is over the clients' pull times; the first client on each node (and on the upstream) checks every digest "+
		"it gets. Bytes between peers are the response bytes the nodes' peer listeners logged for the image (the nodes run at log "+
		"level info for this); client bytes from peers is `berth_bytes_served_total{source=\"peer\"}` summed over the nodes. "+
		"Targets: one upstream GET per blob for the whole cluster, and bytes between peers at most (replicas + 1)× the image's "+
		"bytes (manifest and blobs), or (nodes − 1)× where that is more: every node serves clients of its own, so each must receive each blob "+
		"once (only the filling owner gets it from the upstream) and the manifest once.",
		n, nodesLabel(c.ClusterNodes), clusterReplicas, len(descs)-1, sizeLabel(blobBytes), c.ClusterPar, n)
	var sizes []*clusterSize
	for _, nn := range c.ClusterNodes {
		sizes = append(sizes, newClusterSize(s, nn, n, c.ClusterPar, len(descs)))
	}
	t0 := time.Now()
	for rep := 0; rep < c.ClusterReps; rep++ {
		if rep > 0 && time.Since(t0)/time.Duration(rep)*time.Duration(rep+1) > c.ClusterTime {
			s.note("Stopped after %d of %d rounds: another would have passed the scenario's limit of %s.", rep, c.ClusterReps, c.ClusterTime)
			break
		}
		for _, cs := range sizes {
			if err := h.clusterOnce(ctx, s, cs, descs, blobBytes+int64(len(h.image.Body)), rep); err != nil {
				return fmt.Errorf("%d nodes: %w", cs.nodes, err)
			}
		}
	}
	for _, cs := range sizes {
		cs.notes(s, n, blobBytes+int64(len(h.image.Body)))
	}
	return nil
}

func newClusterSize(s *Section, nn, clients, par, blobs int) *clusterSize {
	cs := &clusterSize{nodes: nn, bySource: map[string]*Sample{}, peerStatus: map[int]int{}}
	c := fmt.Sprintf("%d nodes, %d clients × %d fetches", nn, clients, par)
	ms := func(measure string) *Row {
		return s.add(&Row{Case: c, Measure: measure, Berth: sample("ms", 0), Ref: sample("ms", 0), RefName: "direct"})
	}
	cs.wall, cs.med, cs.p99 = ms("wall time, all clients done"), ms("pull time, median client"), ms("pull time, p99 client")
	cs.gets = s.add(&Row{Case: c, Measure: fmt.Sprintf("upstream GETs per blob (max of %d blobs)", blobs), Berth: sample("", 0),
		Ref: sample("", 0), RefName: "direct", NoRatio: true, Target: &Target{exactlyAbs, 1, "= 1"}})
	cs.mans = s.add(&Row{Case: c, Measure: "upstream GETs of the manifest", Berth: sample("", 0), Ref: sample("", 0),
		RefName: "direct", NoRatio: true})
	cs.peer = s.add(&Row{Case: c, Measure: "bytes between peers (peer listeners)", Berth: sample("MiB", 1)})
	b := peerBound(nn)
	cs.peerX = s.add(&Row{Case: c, Measure: "bytes between peers ÷ the image's bytes", Berth: sample("", 2),
		Target: &Target{atMostAbs, b, fmt.Sprintf("≤ %.0f×", b)}})
	cs.via = s.add(&Row{Case: c, Measure: "client bytes from peers (metrics)", Berth: sample("MiB", 1)})
	cs.gets.Why = "Each digest has owner nodes (rendezvous hashing); a node that misses a blob asks its owners first and only " +
		"the first owner fills it from the upstream, so the cluster should fetch each blob once. More than one GET means a node " +
		"went to the upstream itself (no owner answered, or a peer's stream broke and was not resumed from another owner) or " +
		"two owners filled the same blob."
	cs.peerX.Why = "A node gets the manifest from the tag's first owner and each blob it does not own from the blob's first " +
		"owner, once, however many of its clients ask; more than that means a peer stream was cut and read again, a node " +
		"fetched a blob from a second owner too, or a node fetched the manifest twice (the peer listeners' request lines " +
		"name the path of each transfer)."
	cs.up.Unit, cs.nodeCPU.Unit, cs.upCPU.Unit, cs.dirCPU.Unit = "ms", "s", "s", "s"
	cs.nodeCPU.Prec, cs.upCPU.Prec, cs.dirCPU.Prec = 2, 2, 2
	return cs
}

// clusterDirect runs the storm once directly from the upstream, the
// reference for the cluster run that follows.
func (h *harness) clusterDirect(ctx context.Context, cs *clusterSize, descs []descriptor) error {
	c := h.cfg
	if err := h.ref.Reset(ctx); err != nil {
		return err
	}
	u0 := cpuTime(h.ref.Pid())
	fctx, cancel := context.WithTimeout(ctx, c.FetchTimeout)
	d, err := h.imageStorm(fctx, []string{h.ref.Upstream}, c.ClusterClients, c.ClusterPar)
	cancel()
	cs.dirCPU.Add((cpuTime(h.ref.Pid()) - u0).Seconds())
	if err != nil {
		return fmt.Errorf("direct: %w", err)
	}
	st, err := h.ref.Stats(ctx)
	if err != nil {
		return err
	}
	dmax, _, _ := blobGets(st, descs)
	cs.gets.Ref.Add(float64(dmax))
	cs.mans.Ref.Add(float64(st.Counts["GET manifests"]))
	cs.wall.Ref.Add(ms(d.Wall))
	cs.med.Ref.Add(pctMs(d.Pulls, 0.5))
	cs.p99.Ref.Add(pctMs(d.Pulls, 0.99))
	h.logf("  %d clients direct: %v (p99 client %v)", c.ClusterClients, d.Wall.Round(time.Millisecond),
		time.Duration(pctMs(d.Pulls, 0.99))*time.Millisecond)
	return nil
}

// clusterOnce runs the storm once directly from the upstream and once
// through a fresh cluster of cs.nodes nodes.
func (h *harness) clusterOnce(ctx context.Context, s *Section, cs *clusterSize, descs []descriptor, imageBytes int64, rep int) error {
	if err := h.clusterDirect(ctx, cs, descs); err != nil {
		return err
	}
	nodes, took, err := h.startCluster(ctx, cs.nodes)
	if err != nil {
		return err
	}
	cs.up.Add(ms(took))
	r, err := h.clusterRun(ctx, nodes)
	for i, nl := range r.logs {
		for _, p := range nl.Problems {
			cs.problems = append(cs.problems, nodes[i].name+": "+p)
		}
		for k, v := range nl.PeerStatus {
			cs.peerStatus[k] += v
		}
		cs.peerAborted += nl.PeerAborted
	}
	if err != nil {
		if len(cs.problems) > 0 {
			err = fmt.Errorf("%w; the nodes logged: %s", err, strings.Join(cs.problems[:min(len(cs.problems), 3)], " | "))
		}
		return err
	}
	bmax, bzero, bsum := blobGets(r.st, descs)
	cs.gets.Berth.Add(float64(bmax))
	cs.mans.Berth.Add(float64(r.st.Counts["GET manifests"]))
	cs.wall.Berth.Add(ms(r.storm.Wall))
	cs.med.Berth.Add(pctMs(r.storm.Pulls, 0.5))
	cs.p99.Berth.Add(pctMs(r.storm.Pulls, 0.99))
	var pb int64
	for _, nl := range r.logs {
		pb += nl.PeerBlobBytes + nl.PeerManifestBytes
	}
	cs.peer.Berth.Add(mib(pb))
	cs.peerX.Berth.Add(float64(pb) / float64(imageBytes))
	cs.via.Berth.Add(r.served["peer"] / miB)
	var servedAll float64
	for k, v := range r.served {
		servedAll += v
		if cs.bySource[k] == nil {
			cs.bySource[k] = &Sample{Unit: "MiB", Prec: 1}
		}
		cs.bySource[k].Add(v / miB)
	}
	cs.nodeCPU.Add(r.nodeCPU.Seconds())
	cs.upCPU.Add(r.upCPU.Seconds())
	pre := fmt.Sprintf("%d nodes, run %d", cs.nodes, rep+1)
	if math.Abs(servedAll-float64(r.storm.Bytes)) > 0.001*float64(r.storm.Bytes) {
		s.note("%s: the clients received %d bytes, the nodes' berth_bytes_served_total grew by %.0f.", pre, r.storm.Bytes, servedAll)
	}
	if bzero > 0 {
		s.note("%s: the upstream saw no GET for %d of the image's %d blobs.", pre, bzero, len(descs))
	}
	if bmax > 1 {
		s.note("%s: the upstream saw %d GETs for the image's %d blobs (%s).", pre, bsum, len(descs), extraGets(r.st, descs))
	}
	if hd := r.st.Counts["HEAD manifests"]; hd > 0 {
		s.note("%s: the upstream also saw %d HEAD requests for manifests.", pre, hd)
	}
	h.logf("  %d nodes: %v (up in %v, p99 client %v); upstream GETs per blob max %d (%d in all), manifest GETs %d; "+
		"peer bytes %.1f MiB (%.2f× the image)", cs.nodes, r.storm.Wall.Round(time.Millisecond), took.Round(time.Millisecond),
		time.Duration(pctMs(r.storm.Pulls, 0.99))*time.Millisecond, bmax, bsum, r.st.Counts["GET manifests"], mib(pb),
		float64(pb)/float64(imageBytes))
	return nil
}

// extraGets names the blobs the upstream served more than once.
func extraGets(st upstreamStats, descs []descriptor) string {
	var l []string
	for _, d := range descs {
		if g := st.BlobGets[d.Digest]; g > 1 {
			l = append(l, fmt.Sprintf("%s… %s %d×", d.Digest[:15], sizeLabel(d.Size), g))
		}
	}
	return strings.Join(l, ", ")
}

// notes adds what one size's runs showed beside the rows.
func (cs *clusterSize) notes(s *Section, clients int, imageBytes int64) {
	pre := fmt.Sprintf("%d nodes", cs.nodes)
	s.note("%s: from the first node's start until every node saw %d alive members: %s.", pre, cs.nodes, cs.up.String())
	var srcs []string
	for _, k := range []string{"store", "upstream", "peer", "stale", "local"} {
		if v := cs.bySource[k]; v != nil {
			srcs = append(srcs, k+" "+v.String())
		}
	}
	if len(srcs) > 0 {
		s.note("%s: bytes the clients got, by where the serving node took them (berth_bytes_served_total summed over the nodes, "+
			"per run): %s; the %d clients received %s per run.", pre, strings.Join(srcs, ", "), clients, sizeLabel(int64(clients)*imageBytes))
	}
	gib := float64(int64(clients)*imageBytes) / giB
	s.note("%s: server CPU per run: the nodes %s in all and the upstream %s; directly, the upstream %s. Per GiB the "+
		"clients received, the nodes spent %.2f s of CPU and the upstream serving directly %.2f s: a client that joins a "+
		"fill or a peer's stream is sent the bytes through user space (read back from the fill's file), where a stored "+
		"blob and the direct upstream go out with sendfile; on two shared cores that CPU is taken from the clients.",
		pre, cs.nodeCPU.String(), cs.upCPU.String(), cs.dirCPU.String(), cs.nodeCPU.Median()/gib, cs.dirCPU.Median()/gib)
	delete(cs.peerStatus, 200)
	if len(cs.peerStatus) > 0 || cs.peerAborted > 0 {
		s.note("%s: peer listeners answered other than 200: %v (a first owner asking its replicas for a copy before the "+
			"upstream gets 404); %d peer responses were cut short.", pre, cs.peerStatus, cs.peerAborted)
	}
	if len(cs.problems) > 0 {
		s.note("%s: between seeing every member alive and being stopped, the nodes logged %d warnings or errors; the first: `%s`.",
			pre, len(cs.problems), trimLine(cs.problems[0], 400))
	}
}

// clusterRunResult is one storm through a cluster.
type clusterRunResult struct {
	storm   stormResult
	st      upstreamStats
	served  map[string]float64 // bytes served to clients during the storm by source, summed over nodes
	logs    []nodeLog          // complete: read after the nodes stopped
	nodeCPU time.Duration
	upCPU   time.Duration
}

// clusterRun warms each node (one manifest request for bench/blobs), runs
// the storm, reads the counters, stops the nodes and reads their logs.
func (h *harness) clusterRun(ctx context.Context, nodes []*clusterNode) (r clusterRunResult, err error) {
	alive := time.Now()
	defer func() {
		stopAt := time.Now()
		stopCluster(nodes)
		h.logf("  cluster stopped in %v", time.Since(stopAt).Round(time.Millisecond))
		for _, nd := range nodes {
			nl, lerr := readNodeLog(nd.logPath, imageRepo, alive, stopAt)
			if lerr != nil && err == nil {
				err = lerr
			}
			r.logs = append(r.logs, nl)
		}
	}()
	bases := make([]string, len(nodes))
	for i, nd := range nodes {
		bases[i] = nd.URL
		wc := newClient(2)
		err := h.warmClient(ctx, wc, nd.URL)
		closeIdle(wc)
		if err != nil {
			return r, fmt.Errorf("%s: %w", nd.name, err)
		}
	}
	served0 := make([]map[string]float64, len(nodes))
	for i, nd := range nodes {
		if served0[i], err = servedBySource(ctx, nd.berthProc); err != nil {
			return r, err
		}
	}
	if err := h.ref.Reset(ctx); err != nil {
		return r, err
	}
	cpu0 := make([]time.Duration, len(nodes))
	for i, nd := range nodes {
		cpu0[i] = cpuTime(nd.Pid())
	}
	u0 := cpuTime(h.ref.Pid())
	fctx, cancel := context.WithTimeout(ctx, h.cfg.FetchTimeout)
	r.storm, err = h.imageStorm(fctx, bases, h.cfg.ClusterClients, h.cfg.ClusterPar)
	cancel()
	r.upCPU = cpuTime(h.ref.Pid()) - u0
	for i, nd := range nodes {
		r.nodeCPU += cpuTime(nd.Pid()) - cpu0[i]
	}
	if err != nil {
		return r, err
	}
	if r.st, err = h.ref.Stats(ctx); err != nil {
		return r, err
	}
	r.served = map[string]float64{}
	for i, nd := range nodes {
		m, err := servedBySource(ctx, nd.berthProc)
		if err != nil {
			return r, err
		}
		for k, v := range m {
			r.served[k] += v - served0[i][k]
		}
	}
	return r, nil
}

// blobGets is the most upstream GETs any of descs got, how many got none,
// and the sum.
func blobGets(st upstreamStats, descs []descriptor) (most, zero, sum int) {
	for _, d := range descs {
		g := st.BlobGets[d.Digest]
		most, sum = max(most, g), sum+g
		if g == 0 {
			zero++
		}
	}
	return most, zero, sum
}

// pctMs is the p-th percentile of ds in ms (nearest rank).
func pctMs(ds []time.Duration, p float64) float64 {
	var s Sample
	for _, d := range ds {
		s.Add(ms(d))
	}
	v := s.sorted()
	if len(v) == 0 {
		return math.NaN()
	}
	if p == 0.5 {
		return s.Median()
	}
	return v[max(0, int(math.Ceil(p*float64(len(v))))-1)]
}

func trimLine(s string, n int) string {
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
