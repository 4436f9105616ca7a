package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"
)

// TestHotManifestsBoundedByMemory: cache.hotManifestBytes bounds what the
// hot manifests hold in memory, not only their bodies. Tiny manifests
// (a 10-byte body costs some 270 bytes of heap as an entry) fill the
// budget at a tenth of the count a bound on bodies alone would let in,
// and the heap they hold stays within the budget.
func TestHotManifestsBoundedByMemory(t *testing.T) {
	const budget = 64 << 10
	opts := testOptions()
	opts.HotManifestBytes = budget
	s, err := Open(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const mt = "application/vnd.oci.image.manifest.v1+json"
	var digests []string
	for i := range 600 {
		body := []byte(fmt.Sprintf("{\"n\":%04d}", i)) // 10 bytes
		sum := sha256.Sum256(body)
		d := "sha256:" + hex.EncodeToString(sum[:])
		if err := s.PutManifest(t.Context(), d, &Manifest{MediaType: mt, Body: body}); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	s.hot.Wait()
	held := 0
	for _, d := range digests {
		if _, ok := s.hot.Get(d); ok {
			held++
		}
	}
	// A bound on bodies (and ristretto's 48 bytes an entry) lets all 600
	// in: 600 × 58 bytes is about 34 KiB.
	perEntry := 10 + 2*len(mt) + hotEntryOverhead + 48
	if held == 0 || held*perEntry > budget {
		t.Fatalf("the hot cache holds %d of 600 tiny manifests; want 1 to %d (%d bytes each in %d)",
			held, budget/perEntry, perEntry, budget)
	}
	t.Logf("held %d tiny manifests in a %d-byte budget", held, budget)
}

// TestHotEntryOverheadMeasured: hotEntryOverhead matches the heap an
// entry of a tiny manifest takes, as the hot cache holds it, within a
// quarter.
func TestHotEntryOverheadMeasured(t *testing.T) {
	s := stOpen(t, t.TempDir())
	const mt = "application/vnd.oci.image.manifest.v1+json"
	const n = 20000
	keep := make([]*Manifest, 0, n)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i := range n {
		// As readManifest builds one: the body cut from the record.
		v := make([]byte, 2+len(mt)+10)
		copy(v[2:], mt)
		m := &Manifest{MediaType: string(v[2 : 2+len(mt)]), Body: v[2+len(mt):]}
		keep = append(keep, m)
		for !s.hot.Set(fmt.Sprintf("sha256:%064d", i), m, hotCost(m)) {
			s.hot.Wait()
		}
	}
	s.hot.Wait()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	perEntry := float64(ms.HeapAlloc-before-uint64(cap(keep))*8) / n
	want := float64(hotCost(keep[0]) + 48) // ristretto adds 48 bytes an entry
	if perEntry > want*1.25 || perEntry < want*0.75 {
		t.Fatalf("an entry of a 10-byte manifest takes %.0f bytes of heap; hotCost and ristretto count %.0f", perEntry, want)
	}
	runtime.KeepAlive(keep)
}
