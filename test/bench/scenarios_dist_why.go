package main

import "strings"

// distWhy is the likely cause when Berth loses a row of scenario 10 (the
// report prints it only then), by the kind of case.
func distWhy(cs, measure string) string {
	switch {
	case strings.Contains(cs, "manifest by tag"):
		return "Distribution's proxy asks the upstream for the tag on every request by tag, where Berth serves a fresh " +
			"tag from its store, so Berth should win by far; a loss means Berth's handler (the tag and manifest reads, " +
			"the pull record, the request log) cost more than that round trip to a loopback upstream: see scenario 5's " +
			"CPU per request and its profile."
	case strings.Contains(cs, "manifest by digest"):
		return "Both serve a manifest by digest from their store; per request Berth also routes the name, records the " +
			"pull and logs and counts the request (scenario 5's CPU per request), which is the difference on two cores " +
			"shared with the load generator."
	case strings.Contains(cs, "concurrent cold"):
		if strings.Contains(measure, "RSS") {
			return "Every Berth client that follows a fill holds a 256 KiB copy buffer and a goroutine, beside the fill's " +
				"read-ahead; Distribution's clients each hold their own upstream stream instead, so which is larger " +
				"depends on N."
		}
		return "Distribution sends every client to the upstream at once (its upstream GETs above); on loopback, from an " +
			"upstream that sends files with sendfile, N direct streams can beat one fill (bounded by scenario 3's cost " +
			"per byte) followed by N copies. At a site the upstream link would be shared N ways and that lead gone."
	case strings.HasPrefix(cs, "cold") && strings.Contains(measure, "first byte"):
		return "Berth answers once the upstream's headers are in and its temporary file exists, and sends the first " +
			"bytes after they were hashed and written (scenario 3's TTFB); Distribution copies the upstream's body to " +
			"the client as it arrives."
	case strings.HasPrefix(cs, "cold") && strings.Contains(measure, "RSS"):
		return "A Berth fill holds its read-ahead (up to 4 × 256 KiB) and the client's copy buffer; the cold fill's " +
			"other costs are per byte, not memory."
	case strings.HasPrefix(cs, "warm"):
		return "Both serve the bytes from their store through the page cache, so a warm row is bounded by the copy to " +
			"the socket on two shared cores; a loss within the overlap of the min–max ranges is the spread of a busy " +
			"machine, and one that repeats is Berth's per-request work (routing, store lookup, pull record, request " +
			"log) on each blob request."
	}
	return ""
}
