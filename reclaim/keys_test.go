package reclaim

import (
	"slices"
	"strings"
	"testing"
)

// Every text a pass may meet as a digest comes back as it was, and keys
// order as their texts do.
func TestDigestKeys(t *testing.T) {
	texts := []string{
		"sha256:" + strings.Repeat("0f", 32),
		"sha256:" + strings.Repeat("a1", 32),
		"sha256:" + strings.Repeat("A1", 32), // not lower case: another text
		"sha256:" + strings.Repeat("a1", 31), // too short
		"sha256:" + strings.Repeat("g1", 32), // not hex
		"sha512:" + strings.Repeat("b2", 64),
		"sha256:" + strings.Repeat("ff", 32),
		"",
		"not a digest",
	}
	var ds digests
	var keys []dkey
	for _, d := range texts {
		k := ds.key(d)
		if got := ds.digest(k); got != d {
			t.Errorf("digest(key(%q)) = %q", d, got)
		}
		if slices.Contains(keys, k) {
			t.Errorf("%q has the key of another text", d)
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, ds.compare)
	want := slices.Sorted(slices.Values(texts))
	for i, k := range keys {
		if ds.digest(k) != want[i] {
			t.Fatalf("keys sort as %q at %d, texts as %q", ds.digest(k), i, want[i])
		}
	}
	// A table numbers the listed keys first, then the others met.
	tb := newTable([]dkey{ds.key(texts[6]), ds.key(texts[0]), ds.key(texts[5])})
	for _, i := range []int{0, 5, 6} {
		if id, ok := tb.find(ds.key(texts[i])); !ok || !tb.listed(id) || tb.key(id) != ds.key(texts[i]) {
			t.Errorf("listed %q: id %d, %v", texts[i], id, ok)
		}
	}
	id := tb.id(ds.key(texts[1]))
	if tb.listed(id) || tb.id(ds.key(texts[1])) != id || tb.len() != 4 || tb.key(id) != ds.key(texts[1]) {
		t.Errorf("an unlisted key: id %d, table of %d", id, tb.len())
	}
}
