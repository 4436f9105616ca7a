package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestEncryptedFloorSteps: the copies scenario 14's floor adds to the
// hash and the cipher are measured, from a file and over a socket, and a
// file that cannot be read gives no figure (the note then says 0) rather
// than a failure.
func TestEncryptedFloorSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, make([]byte, 3*floorSpan+5), 0o600); err != nil {
		t.Fatal(err)
	}
	if ms := readCopyCPUPerGB(path); ms < 0 {
		t.Errorf("read copy: %v ms per GB", ms)
	}
	if ms := readCopyCPUPerGB(filepath.Join(t.TempDir(), "missing")); ms != 0 {
		t.Errorf("read copy of a missing file: %v ms per GB, want 0", ms)
	}
	if ms := socketWriteCPUPerGB(); ms <= 0 {
		t.Errorf("socket write: %v ms per GB, want a figure", ms)
	}
}
