package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
)

// blobFile is a blob generated on disk.
type blobFile struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Path   string `json:"path"`
}

// manifestEntry is a manifest the reference upstream serves by tag and by
// digest.
type manifestEntry struct {
	Repo      string `json:"repo"`
	Tag       string `json:"tag"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Body      []byte `json:"body"`
}

// refIndex is what the reference server child reads at start.
type refIndex struct {
	Blobs     map[string]string `json:"blobs"` // digest -> file
	Manifests []manifestEntry   `json:"manifests"`
}

const genChunk = 1 << 20

// genBlob writes size bytes of a deterministic ChaCha8 stream (incompressible,
// like a gzip/zstd layer) to a file under dir, hashing as it goes. Only one
// 1 MiB piece is in memory at a time.
func genBlob(ctx context.Context, dir string, size int64, seed uint64) (blobFile, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(size))
	rng := rand.NewChaCha8(key)
	tmp, err := os.CreateTemp(dir, "gen-*")
	if err != nil {
		return blobFile{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	buf := make([]byte, genChunk)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return blobFile{}, err
		}
		p := buf[:min(left, int64(len(buf)))]
		rng.Read(p)
		h.Write(p)
		if _, err := tmp.Write(p); err != nil {
			return blobFile{}, err
		}
		left -= int64(len(p))
	}
	if err := tmp.Close(); err != nil {
		return blobFile{}, err
	}
	hx := hex.EncodeToString(h.Sum(nil))
	path := filepath.Join(dir, hx)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return blobFile{}, err
	}
	return blobFile{Digest: "sha256:" + hx, Size: size, Path: path}, nil
}

// genBlobs generates every size on two workers; seeds are base+i.
func genBlobs(ctx context.Context, dir string, sizes []int64, base uint64) ([]blobFile, error) {
	out := make([]blobFile, len(sizes))
	errs := make([]error, len(sizes))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, n := range sizes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = genBlob(ctx, dir, n, base+uint64(i))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeBytesBlob stores a small in-memory blob (config JSON) as a file.
func writeBytesBlob(dir string, b []byte) (blobFile, error) {
	sum := sha256.Sum256(b)
	hx := hex.EncodeToString(sum[:])
	path := filepath.Join(dir, hx)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return blobFile{}, err
	}
	return blobFile{Digest: "sha256:" + hx, Size: int64(len(b)), Path: path}, nil
}

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type imageManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// buildImage writes a config blob for layers and returns the manifest
// (repo:tag) and the config blob.
func buildImage(dir, repo, tag string, layers []blobFile) (manifestEntry, blobFile, error) {
	var cfg struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		RootFS       struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	cfg.Architecture, cfg.OS, cfg.RootFS.Type = "amd64", "linux", "layers"
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return manifestEntry{}, blobFile{}, err
	}
	config, err := writeBytesBlob(dir, cb)
	if err != nil {
		return manifestEntry{}, blobFile{}, err
	}
	m := imageManifest{SchemaVersion: 2, MediaType: ociManifest,
		Config: descriptor{MediaType: ociConfig, Digest: config.Digest, Size: config.Size}}
	for _, l := range layers {
		m.Layers = append(m.Layers, descriptor{MediaType: ociLayer, Digest: l.Digest, Size: l.Size})
	}
	body, err := json.Marshal(m)
	if err != nil {
		return manifestEntry{}, blobFile{}, err
	}
	sum := sha256.Sum256(body)
	return manifestEntry{Repo: repo, Tag: tag, Digest: "sha256:" + hex.EncodeToString(sum[:]),
		MediaType: ociManifest, Body: body}, config, nil
}

func sizeLabel(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
