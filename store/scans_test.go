package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Scan records list an image's packages: under encryption (scope local)
// a local image's record is sealed in pebble and read back whole, a
// cached image's stays in the clear unless its digest's record was sealed
// before, and a key rotation rewraps the sealed ones, so the store opens
// with the new key alone and reads them.
func TestScanRecordsEncrypted(t *testing.T) {
	ctx := context.Background()
	f := newRTFixture(t)
	open := func(key []byte, file string) *Store {
		s, err := Open(ctx, filepath.Join(f.dir, "data"), Options{Encryption: &Encryption{Key: key, KeyFile: file, ReadKey: f.readKey}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open(f.oldKey, f.oldFile)
	local, cached, both := stSHA256([]byte("local")), stSHA256([]byte("cached")), stSHA256([]byte("both"))
	recs := map[string]string{
		local:  `{"packages":[{"name":"secret-local-package"}]}`,
		cached: `{"packages":[{"name":"public-package"}]}`,
		both:   `{"packages":[{"name":"secret-again"}]}`,
	}
	put := func(s *Store, d string, isLocal bool) {
		if err := s.PutScan(ctx, d, []byte(recs[d]), isLocal); err != nil {
			t.Fatal(err)
		}
	}
	put(s, local, true)
	put(s, cached, false)
	put(s, both, true)
	put(s, both, false) // a later scan through a cached repository
	for d, sealed := range map[string]bool{local: true, cached: false, both: true} {
		raw, err := s.get(scanKey(d))
		if err != nil || sealedManifest(raw) != sealed || sealed && strings.Contains(string(raw), "secret") {
			t.Fatalf("record %s stored as %q (%v), want sealed %v", d, raw, err, sealed)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for d, want := range recs {
			if got, err := s.GetScan(ctx, d); err != nil || string(got) != want {
				t.Fatalf("GetScan %s: %q %v", d, got, err)
			}
		}
		n := 0
		err := s.ListScans(ctx, func(d string, v []byte) error {
			if string(v) != recs[d] {
				t.Errorf("ListScans %s: %q", d, v)
			}
			n++
			return nil
		})
		if err != nil || n != len(recs) {
			t.Fatalf("ListScans: %d records, %v", n, err)
		}
	}
	check(s)

	r, err := s.RotateKey(ctx, f.newKey, f.newFile)
	if err != nil || r.Scans != 2 {
		t.Fatalf("rotation: %+v %v, want 2 scan records rewrapped", r, err)
	}
	check(s)
	s.Close()
	os.Remove(f.oldFile)
	s = open(f.newKey, f.newFile)
	defer s.Close()
	check(s)
}
