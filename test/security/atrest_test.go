package security

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/test/testport"
)

// Rows of the attack suite on encryption at rest (docs/security.md,
// "Stored content is encrypted at rest"): the attacker holds the node's
// disk, or can write to it.

// atRest is a berth with encryption of local repositories on, over dir.
type atRest struct {
	*node
	dir, keyFile string
	secret       []byte // a pushed layer's bytes
	secretDigest string
	marker       string // a string only the pushed manifest holds
}

func startAtRest(t *testing.T) *atRest {
	t.Helper()
	key := make([]byte, 32)
	crand.Read(key)
	a := &atRest{dir: t.TempDir(), keyFile: writeFile(t, "encryption.key", hex.EncodeToString(key)+"\n"),
		secret: make([]byte, 300<<10), marker: "at-rest-marker-" + hex.EncodeToString(key[:6])}
	crand.Read(a.secret)
	a.node = startBerthIn(t, a.dir, fmt.Sprintf("encryption: {keyFile: %q, scope: local}\nlocal:\n  prefixes: [private]\n  autoCreate: true\n", a.keyFile))
	a.secretDigest = digest(a.secret)
	if st, body := a.sendBody(t, http.MethodPost, "/v2/private/vault/blobs/uploads/?digest="+a.secretDigest, "", "", a.secret); st != http.StatusCreated {
		t.Fatalf("push the layer: %d %s", st, body)
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	if st, body := a.sendBody(t, http.MethodPost, "/v2/private/vault/blobs/uploads/?digest="+digest(cfg), "", "", cfg); st != http.StatusCreated {
		t.Fatalf("push the config: %d %s", st, body)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}],"annotations":{"note":%q}}`,
		digest(cfg), len(cfg), a.secretDigest, len(a.secret), a.marker)
	if st, body := a.sendBody(t, http.MethodPut, "/v2/private/vault/manifests/v1", "", "application/vnd.oci.image.manifest.v1+json", []byte(m)); st != http.StatusCreated {
		t.Fatalf("push the manifest: %d %s", st, body)
	}
	return a
}

// files returns every regular file under the data directory's subdir.
func (a *atRest) files(t *testing.T, subdir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(filepath.Join(a.dir, subdir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				out[p] = b
			}
		}
		return nil
	})
	return out
}

var atRestAttacks = []struct {
	name, attack, safe string
	run                func(t *testing.T, a *atRest)
}{
	{
		name:   "at-rest-blob-file",
		attack: "the disk of a node with encryption on is read: every file under blobs/ and tmp/, looking for a pushed layer's bytes",
		safe:   "no 32-byte run of the layer is on the disk; the layer pulls back whole",
		run: func(t *testing.T, a *atRest) {
			files := a.files(t, "blobs")
			for p, b := range a.files(t, "tmp") {
				files[p] = b
			}
			if len(files) == 0 {
				t.Fatal("no blob files")
			}
			for p, b := range files {
				for off := 0; off+32 <= len(a.secret); off += 4093 {
					if bytes.Contains(b, a.secret[off:off+32]) {
						t.Fatalf("%s holds the layer's bytes %d..%d", p, off, off+32)
					}
				}
			}
			if st, body := a.do(t, http.MethodGet, "/v2/private/vault/blobs/"+a.secretDigest, "", nil); st != http.StatusOK || !bytes.Equal(body[:min(len(body), 1<<20)], a.secret) {
				t.Fatalf("pull the layer: %d, %d bytes", st, len(body))
			}
		},
	},
	{
		name:   "at-rest-manifest",
		attack: "pebble's files (tables and log) are read, looking for a pushed manifest's body",
		safe:   "the manifest's text is not there; it pulls back as pushed",
		run: func(t *testing.T, a *atRest) {
			for p, b := range a.files(t, "db") {
				if bytes.Contains(b, []byte(a.marker)) {
					t.Fatalf("%s holds the manifest's text", p)
				}
			}
			if st, body := a.do(t, http.MethodGet, "/v2/private/vault/manifests/v1", "", nil); st != http.StatusOK || !strings.Contains(string(body), a.marker) {
				t.Fatalf("pull the manifest: %d %s", st, body)
			}
		},
	},
	{
		name:   "at-rest-flipped-byte",
		attack: "one byte of the pushed layer's file is flipped on disk",
		safe:   "the layer is never served with the change: the pull fails, then the layer is unknown (pushed again, it serves); the file is kept in quarantine/",
		run: func(t *testing.T, a *atRest) {
			var file string
			for p := range a.files(t, "blobs") {
				if strings.Contains(p, strings.TrimPrefix(a.secretDigest, "sha256:")) {
					file = p
				}
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b[100] ^= 0x01
			if err := os.WriteFile(file, b, 0o640); err != nil {
				t.Fatal(err)
			}
			path := "/v2/private/vault/blobs/" + a.secretDigest
			if st, body := a.do(t, http.MethodGet, path, "", nil); st == http.StatusOK || bytes.Contains(body, a.secret[90:110]) {
				t.Fatalf("pull of the damaged layer: %d, %d bytes", st, len(body))
			}
			if st, _ := a.do(t, http.MethodHead, path, "", nil); st != http.StatusNotFound {
				t.Errorf("HEAD after the damage: %d, want 404", st)
			}
			if q := a.files(t, "quarantine"); len(q) != 1 {
				t.Errorf("quarantine/ holds %d files, want the damaged one", len(q))
			}
			if st, _ := a.sendBody(t, http.MethodPost, "/v2/private/vault/blobs/uploads/?digest="+a.secretDigest, "", "", a.secret); st != http.StatusCreated {
				t.Fatalf("push again: %d", st)
			}
			if st, body := a.do(t, http.MethodGet, path, "", nil); st != http.StatusOK || !bytes.Equal(body, a.secret) {
				t.Errorf("pull after pushing again: %d, %d bytes", st, len(body))
			}
		},
	},
	{
		name:   "at-rest-wrong-key",
		attack: "the node is started on the disk with another key file, and with none",
		safe:   "it refuses to start, naming the key the store wants and the file to configure; nothing is changed",
		run: func(t *testing.T, a *atRest) {
			a.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-a.done:
			case <-time.After(15 * time.Second):
				t.Fatal("berth did not stop")
			}
			other := writeFile(t, "other.key", strings.Repeat("ab", 32))
			for name, enc := range map[string]string{"another key": fmt.Sprintf("encryption: {keyFile: %q}\n", other), "no key": ""} {
				cfg := writeFile(t, "config.yaml", fmt.Sprintf("listen: \"127.0.0.1:%d\"\ndataDir: %q\nadmin:\n  listen: \"127.0.0.1:%d\"\n%s", testport.Free(t), a.dir, testport.Free(t), enc))
				out, err := exec.Command(binary(t), "serve", "--config", cfg).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "encryption") || !strings.Contains(string(out), a.keyFile) {
					t.Errorf("start with %s: %v, want a refusal naming %s:\n%s", name, err, a.keyFile, out)
				}
			}
		},
	},
}

// TestAtRest runs the rows in order; the last stops the node.
func TestAtRest(t *testing.T) {
	a := startAtRest(t)
	for _, r := range atRestAttacks {
		t.Run(r.name, func(t *testing.T) {
			t.Logf("attack: %s; safe answer: %s", r.attack, r.safe)
			r.run(t, a)
		})
	}
}
