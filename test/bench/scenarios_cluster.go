package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// 8. Cluster morning storm.
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
	n, nn := c.ClusterClients, c.ClusterNodes
	s.Intro = fmt.Sprintf("%d clients, round-robin over %d fresh Berth nodes joined into one cluster (replicas 2, gossip and "+
		"peer listeners on 127.0.0.1 to 127.0.0.%d), pull the same cold image at the same moment like containerd: the %d-layer "+
		"image of scenario 6 (%s of blobs), the manifest by tag, then the config and the layers with %d fetches in parallel, each "+
		"client on connections of its own. Before each run every node sees %d alive members and has answered one manifest "+
		"request for another repository; each run has fresh nodes and data directories. Against the same %d clients pulling "+
		"from the upstream directly. Wall time is from the start to the last client done; the first client on each node (and "+
		"on the upstream) checks every digest it gets. Bytes between peers are the response bytes the nodes' peer listeners "+
		"logged for the image (the nodes run at log level info for this); client bytes from peers is "+
		"`berth_bytes_served_total{source=\"peer\"}` summed over the nodes. Target: one upstream GET per blob for the whole cluster.",
		n, nn, nn, len(descs)-1, sizeLabel(blobBytes), c.ClusterPar, nn, n)
	cs := fmt.Sprintf("%d clients × %d fetches, %d nodes", n, c.ClusterPar, nn)
	wall := s.add(&Row{Case: cs, Measure: "wall time, all clients done", Berth: sample("ms", 0), Ref: sample("ms", 0), RefName: "direct"})
	med := s.add(&Row{Case: cs, Measure: "pull time, median client", Berth: sample("ms", 0), Ref: sample("ms", 0), RefName: "direct"})
	gets := s.add(&Row{Case: cs, Measure: fmt.Sprintf("upstream GETs per blob (max of %d blobs)", len(descs)), Berth: sample("", 0),
		Ref: sample("", 0), RefName: "direct", NoRatio: true, Target: &Target{exactlyAbs, 1, "= 1"}})
	mans := s.add(&Row{Case: cs, Measure: "upstream GETs of the manifest", Berth: sample("", 0), Ref: sample("", 0),
		RefName: "direct", NoRatio: true})
	peer := s.add(&Row{Case: cs, Measure: "bytes between peers (peer listeners)", Berth: sample("MiB", 1)})
	viaPeer := s.add(&Row{Case: cs, Measure: "client bytes from peers (metrics)", Berth: sample("MiB", 1)})
	gets.Why = "Each digest has owner nodes (rendezvous hashing); a node that misses a blob asks its owners first and only " +
		"the first owner fills it from the upstream, so the cluster should fetch each blob once. More than one GET means a node " +
		"went to the upstream itself (no owner answered, or a peer's stream broke and was not resumed from another owner) or " +
		"two owners filled the same blob."
	var up, nodeCPU, upCPU, dirCPU, peerX Sample
	up.Unit, nodeCPU.Unit, upCPU.Unit, dirCPU.Unit = "ms", "s", "s", "s"
	up.Prec, nodeCPU.Prec, upCPU.Prec, dirCPU.Prec, peerX.Prec = 0, 2, 2, 2, 2
	bySource := map[string]*Sample{}
	var problems []string
	peerStatus := map[int]int{}
	peerAborted := 0
	t0 := time.Now()
	for rep := 0; rep < c.ClusterReps; rep++ {
		if rep > 0 && time.Since(t0)/time.Duration(rep)*time.Duration(rep+1) > c.ClusterTime {
			s.note("Stopped after %d of %d runs: another would have passed the scenario's limit of %s.", rep, c.ClusterReps, c.ClusterTime)
			break
		}
		// Directly from the upstream.
		if err := h.ref.Reset(ctx); err != nil {
			return err
		}
		u0 := cpuTime(h.ref.Pid())
		fctx, cancel := context.WithTimeout(ctx, c.FetchTimeout)
		d, err := h.imageStorm(fctx, []string{h.ref.Upstream}, n, c.ClusterPar)
		cancel()
		dirCPU.Add((cpuTime(h.ref.Pid()) - u0).Seconds())
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		st, err := h.ref.Stats(ctx)
		if err != nil {
			return err
		}
		dmax, _, _ := blobGets(st, descs)
		gets.Ref.Add(float64(dmax))
		mans.Ref.Add(float64(st.Counts["GET manifests"]))
		wall.Ref.Add(ms(d.Wall))
		med.Ref.Add(medianMs(d.Pulls))

		// Through a fresh cluster.
		nodes, took, err := h.startCluster(ctx, nn)
		if err != nil {
			return err
		}
		up.Add(ms(took))
		r, err := h.clusterRun(ctx, nodes)
		for i, nl := range r.logs {
			for _, p := range nl.Problems {
				problems = append(problems, nodes[i].name+": "+p)
			}
			for k, v := range nl.PeerStatus {
				peerStatus[k] += v
			}
			peerAborted += nl.PeerAborted
		}
		if err != nil {
			if len(problems) > 0 {
				err = fmt.Errorf("%w; the nodes logged: %s", err, strings.Join(problems[:min(len(problems), 3)], " | "))
			}
			return err
		}
		bmax, bzero, bsum := blobGets(r.st, descs)
		gets.Berth.Add(float64(bmax))
		mans.Berth.Add(float64(r.st.Counts["GET manifests"]))
		wall.Berth.Add(ms(r.storm.Wall))
		med.Berth.Add(medianMs(r.storm.Pulls))
		var pb int64
		for _, nl := range r.logs {
			pb += nl.PeerBlobBytes + nl.PeerManifestBytes
		}
		peer.Berth.Add(mib(pb))
		peerX.Add(float64(pb) / float64(blobBytes))
		viaPeer.Berth.Add(r.served["peer"] / miB)
		var servedAll float64
		for k, v := range r.served {
			servedAll += v
			if bySource[k] == nil {
				bySource[k] = &Sample{Unit: "MiB", Prec: 1}
			}
			bySource[k].Add(v / miB)
		}
		nodeCPU.Add(r.nodeCPU.Seconds())
		upCPU.Add(r.upCPU.Seconds())
		if math.Abs(servedAll-float64(r.storm.Bytes)) > 0.001*float64(r.storm.Bytes) {
			s.note("Run %d: the clients received %d bytes, the nodes' berth_bytes_served_total grew by %.0f.", rep+1, r.storm.Bytes, servedAll)
		}
		if bzero > 0 {
			s.note("Run %d: the upstream saw no GET for %d of the image's %d blobs.", rep+1, bzero, len(descs))
		}
		if hd := r.st.Counts["HEAD manifests"]; hd > 0 {
			s.note("Run %d: the upstream also saw %d HEAD requests for manifests.", rep+1, hd)
		}
		h.logf("  %d clients: cluster %v (up in %v), direct %v; upstream GETs per blob max %d (%d in all), manifest GETs %d; "+
			"peer bytes %.1f MiB (%.2f× the image)", n, r.storm.Wall.Round(time.Millisecond), took.Round(time.Millisecond),
			d.Wall.Round(time.Millisecond), bmax, bsum, r.st.Counts["GET manifests"], mib(pb), float64(pb)/float64(blobBytes))
	}
	s.note("From the first node's start until every node saw %d alive members: %s.", nn, up.String())
	s.note("Bytes between peers were %s× the image's blob bytes; if each blob went once from its filling owner to each "+
		"other node, that would be %d×.", peerX.String(), nn-1)
	var srcs []string
	for _, k := range []string{"store", "upstream", "peer", "stale", "local"} {
		if v := bySource[k]; v != nil {
			srcs = append(srcs, k+" "+v.String())
		}
	}
	if len(srcs) > 0 {
		s.note("Bytes the clients got, by where the serving node took them (berth_bytes_served_total summed over the nodes, "+
			"per run): %s; the %d clients received %s per run.", strings.Join(srcs, ", "), n,
			sizeLabel(int64(n)*(blobBytes+int64(len(h.image.Body)))))
	}
	s.note("Server CPU per run: the %d nodes %s in all and the upstream %s; directly, the upstream %s.",
		nn, nodeCPU.String(), upCPU.String(), dirCPU.String())
	delete(peerStatus, 200)
	if len(peerStatus) > 0 || peerAborted > 0 {
		s.note("Peer listeners answered other than 200: %v; %d peer responses were cut short.", peerStatus, peerAborted)
	}
	if len(problems) > 0 {
		s.note("Between seeing %d alive members and being stopped, the nodes logged %d warnings or errors; the first: `%s`.",
			nn, len(problems), trimLine(problems[0], 400))
	}
	return nil
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

func medianMs(ds []time.Duration) float64 {
	var s Sample
	for _, d := range ds {
		s.Add(ms(d))
	}
	return s.Median()
}

func trimLine(s string, n int) string {
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
