package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/test/testreg"
)

// encKeyFile writes a new encryption key file and returns its path.
func encKeyFile(t *testing.T, name string) string {
	t.Helper()
	key := make([]byte, 32)
	crand.Read(key)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEncryptionKill9: with encryption at rest on, a SIGKILL during a
// fill or right after a key rotation answered loses nothing acknowledged
// and leaves no plaintext on disk (docs/security.md).
func TestEncryptionKill9(t *testing.T) {
	t.Run("fill", encKill9Fill)
	t.Run("rotation", encKill9Rotation)
}

func encKill9Fill(t *testing.T) {
	up := testreg.Start(t)
	img := testreg.Image(t, 11, 40<<20)
	up.Push(t, "big/app", "v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	up.SlowBlobs(20 * time.Millisecond)
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, "")+
		fmt.Sprintf("encryption: {keyFile: %q, scope: all}\n", encKeyFile(t, "k1")))
	resp, err := b.Do(context.Background(), http.MethodGet, "/v2/up/big/app/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4<<20)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	b.Kill()
	resp.Body.Close()
	tmp, _ := os.ReadDir(filepath.Join(b.DataDir, "tmp"))
	if len(tmp) == 0 {
		t.Fatal("expected a partial fill on disk at the time of the kill")
	}
	for _, e := range tmp {
		raw, _ := os.ReadFile(filepath.Join(b.DataDir, "tmp", e.Name()))
		for off := 0; off+32 <= len(head); off += 65521 {
			if bytes.Contains(raw, head[off:off+32]) {
				t.Fatalf("the partial fill %s holds plaintext", e.Name())
			}
		}
	}
	up.Mutate(nil)
	b.Restart()
	resp, err = b.Do(context.Background(), http.MethodGet, "/v2/up/big/app/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, got, err := hashBody(resp)
	if err != nil || n != 40<<20 || got != ld.String() {
		t.Fatalf("after restart: %d bytes hashing to %s, %v; want %s", n, got, err, ld.String())
	}
}

func encKill9Rotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	up := testreg.Start(t)
	oldKey, newKey := encKeyFile(t, "old.key"), encKeyFile(t, "new.key")
	cfg := pushLocalConfig(up.URL) + "encryption: {keyFile: %q}\n"
	b := StartBerth(t, "", fmt.Sprintf(cfg, oldKey))
	var mu sync.Mutex
	acked := map[string][]byte{}
	push := func(i int) {
		data := make([]byte, 1000+i*997)
		crand.Read(data)
		d := pushSha256(data)
		// The node is killed under the last pushes: a failed one was
		// not acknowledged.
		resp, err := send(ctx, nil, http.MethodPost, b.URL+"/v2/private/rot/blobs/uploads/?digest="+d, cred{}, nil, data)
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			mu.Lock()
			acked[d] = data
			mu.Unlock()
		}
	}
	for i := range 40 {
		push(i)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 40; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			push(i)
		}
	})
	st, _, body := request(ctx, t, nil, http.MethodPost, b.AdminURL+"/admin/v1/rotate-key", cred{},
		http.Header{"Content-Type": {"application/json"}}, []byte(fmt.Sprintf(`{"newKeyFile":%q}`, newKey)))
	b.Kill()
	close(stop)
	wg.Wait()
	if st != http.StatusOK {
		t.Fatalf("rotate-key: %d %s", st, body)
	}
	// The old key no longer opens the store, and says which file does.
	out, err := exec.Command(binary(t), "serve", "--config", b.Config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), newKey) {
		t.Fatalf("start with the old key after the rotation: %v, want a refusal naming %s:\n%s", err, newKey, out)
	}
	writeFile(t, b.Config, strings.Replace(mustRead(t, b.Config), oldKey, newKey, 1))
	b.start()
	for d, data := range acked {
		st, _, got := request(ctx, t, nil, http.MethodGet, b.URL+"/v2/private/rot/blobs/"+d, cred{}, nil, nil)
		if st != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("acknowledged push %s after the kill: %d, %d bytes", d, st, len(got))
		}
	}
	t.Logf("%d acknowledged pushes checked", len(acked))
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEncryptionRefill: a flipped byte in a cached blob's encrypted file
// is never served; the next pull fetches the blob from the upstream again.
func TestEncryptionRefill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := testreg.Start(t)
	img := testreg.Image(t, 12, 300<<10)
	up.Push(t, "lib/app", "v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	b := StartBerth(t, "", "upstreams:\n"+upstreamConfig("up", "up", "up.test", up.URL, false, "")+
		fmt.Sprintf("encryption: {keyFile: %q, scope: all}\n", encKeyFile(t, "k")))
	path := b.URL + "/v2/up/lib/app/blobs/" + ld.String()
	st, _, want := request(ctx, t, nil, http.MethodGet, path, cred{}, nil, nil)
	if st != http.StatusOK || pushSha256(want) != ld.String() {
		t.Fatalf("first pull: %d", st)
	}
	file := filepath.Join(b.DataDir, "blobs", "sha256", ld.Hex[:2], ld.Hex+".enc")
	b.WaitLog("the fill committed", 10*time.Second, func(log string) bool { return strings.Contains(log, "blob filled") })
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[200] ^= 0x40
	if err := os.WriteFile(file, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	up.Reset()
	if st, _, got := request(ctx, t, nil, http.MethodGet, path, cred{}, nil, nil); st == http.StatusOK || bytes.Equal(got, want) && len(got) > 0 {
		t.Fatalf("pull of the damaged blob: %d, %d bytes", st, len(got))
	}
	st, _, got := request(ctx, t, nil, http.MethodGet, path, cred{}, nil, nil)
	if st != http.StatusOK || !bytes.Equal(got, want) || up.Count("GET blobs") != 1 {
		t.Fatalf("pull after the damage: %d, %d bytes, %d upstream GETs (want one refill)", st, len(got), up.Count("GET blobs"))
	}
}
