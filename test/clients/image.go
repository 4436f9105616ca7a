package clients

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Media types used by PushRandomImage.
const (
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIConfig      = "application/vnd.oci.image.config.v1+json"
	MediaTypeOCILayer       = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Blob is a content-addressed blob.
type Blob struct {
	MediaType string
	Digest    string // "sha256:..."
	Data      []byte
}

// TestImage describes an image built (and pushed) by PushRandomImage.
type TestImage struct {
	Repo, Tag string
	Manifest  Blob // its Digest is what clients report as the repo digest
	Config    Blob
	Layers    []Blob // gzip-compressed tar layers
	DiffIDs   []string
}

// ImageOptions tweaks RandomImage.
type ImageOptions struct {
	OCI       bool // OCI media types instead of Docker schema 2
	Layers    int  // number of layers (default 1)
	LayerSize int  // random bytes per layer file (default 4096)
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// RandomImage builds a small single-platform image for the current
// GOOS/GOARCH (linux/GOARCH) with random layer content, so that real clients
// can pull and unpack it. It uses only the standard library.
func RandomImage(t testing.TB, opts ImageOptions) TestImage {
	t.Helper()
	if opts.Layers <= 0 {
		opts.Layers = 1
	}
	if opts.LayerSize <= 0 {
		opts.LayerSize = 4096
	}
	mtManifest, mtConfig, mtLayer := MediaTypeDockerManifest, MediaTypeDockerConfig, MediaTypeDockerLayer
	if opts.OCI {
		mtManifest, mtConfig, mtLayer = MediaTypeOCIManifest, MediaTypeOCIConfig, MediaTypeOCILayer
	}
	var img TestImage
	for i := 0; i < opts.Layers; i++ {
		payload := make([]byte, opts.LayerSize)
		if _, err := rand.Read(payload); err != nil {
			t.Fatal(err)
		}
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		mod := time.Unix(0, 0)
		files := []struct {
			name string
			data []byte
		}{
			{fmt.Sprintf("random-%d.bin", i), payload},
			{fmt.Sprintf("layer-%d.txt", i), []byte(fmt.Sprintf("berth test layer %d %x\n", i, payload[:8]))},
		}
		for _, f := range files {
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)),
				Typeflag: tar.TypeReg, ModTime: mod, Format: tar.FormatPAX}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(f.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(tb.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		img.DiffIDs = append(img.DiffIDs, digestOf(tb.Bytes()))
		img.Layers = append(img.Layers, Blob{MediaType: mtLayer, Digest: digestOf(gz.Bytes()), Data: gz.Bytes()})
	}
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config":       map[string]any{"Cmd": []string{"/nonexistent"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": img.DiffIDs},
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	img.Config = Blob{MediaType: mtConfig, Digest: digestOf(cb), Data: cb}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: mtManifest,
		Config: desc{mtConfig, img.Config.Digest, len(cb)}}
	for _, l := range img.Layers {
		m.Layers = append(m.Layers, desc{l.MediaType, l.Digest, len(l.Data)})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.Manifest = Blob{MediaType: mtManifest, Digest: digestOf(mb), Data: mb}
	return img
}

// PushRandomImage builds an image with RandomImage (Docker schema 2, one
// layer) and pushes it to the registry at registryURL (e.g. an httptest
// server URL) as repo:tag (e.g. "library/alpine", "latest").
func PushRandomImage(t testing.TB, registryURL, repo, tag string) TestImage {
	t.Helper()
	img := RandomImage(t, ImageOptions{})
	PushImage(t, registryURL, repo, tag, &img)
	return img
}

// PushImage pushes img's blobs and manifest to registryURL as repo:tag using
// the plain distribution API (monolithic POST+PUT uploads), and sets
// img.Repo/img.Tag.
func PushImage(t testing.TB, registryURL, repo, tag string, img *TestImage) {
	t.Helper()
	base := strings.TrimRight(registryURL, "/")
	c := &http.Client{Timeout: 30 * time.Second}
	for _, b := range append([]Blob{img.Config}, img.Layers...) {
		if err := pushBlob(c, base, repo, b); err != nil {
			t.Fatalf("push blob %s: %v", b.Digest, err)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v2/%s/manifests/%s", base, repo, tag), bytes.NewReader(img.Manifest.Data))
	req.Header.Set("Content-Type", img.Manifest.MediaType)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("push manifest: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest: %s: %s", resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != img.Manifest.Digest {
		t.Fatalf("registry computed manifest digest %s, want %s", got, img.Manifest.Digest)
	}
	img.Repo, img.Tag = repo, tag
}

func pushBlob(c *http.Client, base, repo string, b Blob) error {
	resp, err := c.Post(fmt.Sprintf("%s/v2/%s/blobs/uploads/", base, repo), "", nil)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s: %s", resp.Status, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("bad Location: %w", err)
	}
	u, _ := url.Parse(base + "/")
	u = u.ResolveReference(loc)
	q := u.Query()
	q.Set("digest", b.Digest)
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(b.Data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("finish upload: %s: %s", resp.Status, body)
	}
	return nil
}
