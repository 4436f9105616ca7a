package main

import (
	"fmt"
	"strings"
)

// defaultBounds says, for the scenarios whose code does not set it, what
// bounds each one's figures and how they grow from a small case to a large
// one. A scenario that knows better sets Section.Bound and Section.Growth.
func defaultBounds(id int) [2]string {
	return map[int][2]string{
		1: {"The copy from the page cache to the socket. Berth sends a stored blob with sendfile, as the reference does, so " +
			"both are bounded by the kernel's copy on one core and the client's reads on the other; Berth's own work is per " +
			"request (route, store lookup, log), not per byte.",
			"Flat with the blob's size: the per-request cost is spread over more bytes, so the ratio stays near 1× from 200 MiB " +
				"to 1 GiB. A blob that does not fit in the page cache would make it the disk's read rate, for both."},
		2: {"The machine's cores: every stream is a sendfile copy plus a client reading it, and they share two cores.",
			"The aggregate stays at the cores' copy rate however many streams there are beyond the number of cores; each " +
				"stream gets its share."},
		3: {"CPU per byte on the filling core: receive from the upstream, sha256, write the blob's file, send to the " +
			"client; sha256 alone (Machine: sha256 on one core) is the floor of any fill that verifies as it streams. Then the " +
			"disk: every byte is written to the blob's file and made durable before the fill commits. The reference is one " +
			"sendfile.",
			"Throughput is flat in the blob's size past the first few MiB (the work is per byte). The wait for the last byte " +
				"is what of the verification and commit the client waits for: it grows with the blob's size when the client " +
				"waits for an fsync of the whole file, and stays flat when the file was made durable as the fill went."},
		4: {"One fill (scenario 3) paces the first client; the followers are copies of bytes already in the page cache, " +
			"so past the fill it is the cores' copy rate. The reference makes N upstream GETs and N sendfile copies.",
			"Upstream GETs stay 1 for any N. As N grows the fill is paid once for more clients, so the aggregate approaches " +
				"the warm rate (scenario 2), and the slowest client's TTFB grows more slowly than directly, where N requests " +
				"wait for the upstream at once."},
		5: {"CPU per request: the load generator and both servers share the two cores; net/http's parsing and writing are " +
			"most of it for both, and Berth adds the name routing, a pebble read (by tag: the tag, then the manifest) and the " +
			"pull record.",
			"Flat in the number of connections beyond the cores (requests queue); per request, independent of the store's " +
				"size (one keyed read by tag or digest, no scan)."},
		6: {"Warm: the page-cache copy of scenarios 1 and 2 plus one manifest round trip and one request per blob. Cold: the " +
			"fills of the largest layers (scenario 3's per-byte cost), four at a time on two cores.",
			"Warm pull time grows with the image's bytes; cold pull time follows the largest layers, and layers of a few MiB " +
				"or less cost their round trip and commit rather than their bytes."},
		7: {"Fixed buffers, not blob bytes: a fill's read-ahead and copy buffers, one 256 KiB buffer and net/http's buffers " +
			"per client, the store's caches at idle.",
			"Flat in the blob's size (a 2 GiB fill costs the same as a small one); it grows with concurrent clients, by their " +
				"buffers and goroutines."},
		8: {"On one machine, the two cores: every node, the upstream and every client share them, so each node's copy of the " +
			"image over loopback takes CPU from the clients. On a real site, the links between nodes (each node receives " +
			"each blob once from its first owner) and the first owners' upstream link.",
			"Upstream GETs per blob stay 1 at every size. Bytes between peers grow as (nodes − 1)× the image when every node " +
				"has clients. Here the clients' wall time grows with them, because the peer copies share the two cores; on " +
				"separate machines they run on separate links at once, so the wall time should stay near one fill plus one hop."},
		9: {"In process, without HTTP: CPU (hashing, copying) and the disk (fsync on write, the page cache on read).", ""},
		10: {"The same as the Berth scenario each row repeats; both servers and the client share the two cores, so the one " +
			"that costs less CPU per byte or per request wins.",
			"Berth's lead grows with concurrent cold clients (one upstream GET for any N, against Distribution's N); for one " +
				"client's cold fill it is the per-byte cost of hashing every byte before it is sent and writing it to disk " +
				"(scenario 3)."},
	}[id]
}

// bounds is what bounds s and how its figures grow, from the section or
// from defaultBounds.
func (s *Section) bounds() (bound, growth string) {
	d := defaultBounds(s.ID)
	bound, growth = s.Bound, s.Growth
	if bound == "" {
		bound = d[0]
	}
	if growth == "" {
		growth = d[1]
	}
	return bound, growth
}

// measuredGrowth lists, for each measure that more than one case of s
// has, Berth's median per case in order (with the ratio to the reference
// when there is one): how the figure went from the small case to the
// large one in this run.
func (s *Section) measuredGrowth() []string {
	var order []string
	byMeasure := map[string][]*Row{}
	for _, r := range s.Rows {
		if r.Berth.Empty() {
			continue
		}
		if byMeasure[r.Measure] == nil {
			order = append(order, r.Measure)
		}
		byMeasure[r.Measure] = append(byMeasure[r.Measure], r)
	}
	var out []string
	for _, m := range order {
		rows := byMeasure[m]
		if len(rows) < 2 {
			continue
		}
		short := shortCases(rows)
		var steps []string
		for i, r := range rows {
			v := r.Berth.num(r.Berth.Median())
			if r.Berth.Unit != "" {
				v += " " + r.Berth.Unit
			}
			if r.Ratio != "" {
				v += " (" + r.Ratio + ")"
			}
			steps = append(steps, short[i]+": "+v)
		}
		out = append(out, fmt.Sprintf("%s: %s", m, strings.Join(steps, " → ")))
	}
	return out
}

// shortCases is the rows' cases without the comma-separated parts they
// all share ("3 nodes, 100 clients" and "5 nodes, 100 clients" are "3
// nodes" and "5 nodes").
func shortCases(rows []*Row) []string {
	count := map[string]int{}
	for _, r := range rows {
		for _, part := range strings.Split(r.Case, ", ") {
			count[part]++
		}
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		var keep []string
		for _, part := range strings.Split(r.Case, ", ") {
			if count[part] < len(rows) {
				keep = append(keep, part)
			}
		}
		out[i] = strings.Join(keep, ", ")
		if out[i] == "" {
			out[i] = r.Case
		}
	}
	return out
}

// boundsMarkdown prints what bounds s and how it grows.
func (s *Section) boundsMarkdown(p func(string, ...any)) {
	bound, growth := s.bounds()
	if bound != "" {
		p("**What bounds it:** %s\n\n", bound)
	}
	if growth != "" {
		p("**From small to large:** %s\n\n", growth)
	}
	if g := s.measuredGrowth(); len(g) > 0 {
		p("Measured, case by case (Berth's median, ratio to the reference):\n\n")
		for _, l := range g {
			p("- %s\n", mdEscape(l))
		}
		p("\n")
	}
}
