package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// The sealed reference serves the plaintext in every arrangement, for
// sizes around the chunk and span boundaries, and cuts the stream of a
// file with a flipped byte.
func TestSealedReference(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, sealedDir), 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, sealedDir, "key"), []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sealedHandler(dir))
	defer srv.Close()
	for _, size := range []int{1, sealChunk, sealChunk + 1, sealSpan * sealChunk, sealSpan*sealChunk + 7, 3*sealSpan*sealChunk - 5} {
		plain := make([]byte, size)
		rand.Read(plain)
		sum := sha256.Sum256(plain)
		name := hex.EncodeToString(sum[:])
		src := filepath.Join(dir, "plain")
		if err := os.WriteFile(src, plain, 0o644); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, sealedDir, name)
		if err := sealFile(key, src, dst); err != nil {
			t.Fatal(err)
		}
		for stages := 1; stages <= 3; stages++ {
			got, err := getAll(srv.URL + "/sealed/" + name + fmt.Sprintf("?stages=%d", stages))
			if err != nil || !bytes.Equal(got, plain) {
				t.Errorf("size %d, %d stages: %d bytes, %v; want the %d bytes", size, stages, len(got), err, size)
			}
		}
		sealed, _ := os.ReadFile(dst)
		sealed[len(sealed)/2] ^= 1
		os.WriteFile(dst, sealed, 0o644)
		for stages := 1; stages <= 3; stages++ {
			if got, err := getAll(srv.URL + "/sealed/" + name + fmt.Sprintf("?stages=%d", stages)); err == nil {
				t.Errorf("size %d, %d stages, a flipped byte: %d bytes and no error", size, stages, len(got))
			}
		}
	}
}

func getAll(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
