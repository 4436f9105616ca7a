package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"berth/config"
	"berth/registry"
	"berth/syncer"
	"berth/upstream"

	"go.uber.org/zap"
)

// maxWarm bounds the images of one warm request.
const maxWarm = 1000

// WarmRequest is warm's request (Berth's own verb): images to fill through
// the node now, as a client pull would, and pin with Pin.
type WarmRequest struct {
	// Refs are images as clients pull them through Berth
	// ("hub/library/alpine:3.20").
	Refs []string `json:"refs,omitempty"`
	// Images are upstream names as Kubernetes manifests write them
	// ("nginx:1.27", "ghcr.io/org/app:v1"): the rule whose registry is the
	// name's host (docker.io without one) fills them.
	Images []string `json:"images,omitempty"`
	// Platforms limits an index's children ("linux/amd64"); all without.
	Platforms []string `json:"platforms,omitempty"`
	Pin       bool     `json:"pin,omitempty"`
}

// WarmImage is one image's outcome.
type WarmImage struct {
	// Image is the image as the request named it.
	Image          string `json:"image"`
	RepositoryName string `json:"repositoryName,omitempty"`
	Reference      string `json:"reference,omitempty"`
	ImageDigest    string `json:"imageDigest,omitempty"`
	// Bytes came from the upstream (not already held).
	Bytes  int64  `json:"bytes"`
	Pinned bool   `json:"pinned,omitempty"`
	Error  string `json:"error,omitempty"`
}

// WarmResponse answers warm: each image's outcome, and the totals.
type WarmResponse struct {
	Images []WarmImage `json:"images"`
	Warmed int         `json:"warmed"`
	Failed int         `json:"failed"`
	Bytes  int64       `json:"bytes"`
}

func (s *Service) warm(ctx context.Context, req *WarmRequest) (*WarmResponse, error) {
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	if n := len(req.Refs) + len(req.Images); n == 0 || n > maxWarm {
		return nil, invalidf("refs", "give between 1 and %d images (refs or images), not %d; split a longer list", maxWarm, n)
	}
	for i, p := range req.Platforms {
		if err := config.CheckPlatform(p); err != nil {
			return nil, invalidf(fmt.Sprintf("platforms[%d]", i), "%v", err)
		}
	}
	router := s.live().Router
	if router == nil {
		return nil, invalidf("", "this node mirrors no upstream: there is nothing to warm")
	}
	resp := &WarmResponse{Images: []WarmImage{}}
	for i, image := range append(append([]string{}, req.Refs...), req.Images...) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		w := s.warmOne(ctx, sy, router, image, i >= len(req.Refs), req)
		if w.Error != "" {
			resp.Failed++
		} else {
			resp.Warmed++
		}
		resp.Bytes += w.Bytes
		resp.Images = append(resp.Images, w)
	}
	return resp, nil
}

// warmOne fills (and pins) one image; its error is in the outcome.
func (s *Service) warmOne(ctx context.Context, sy Syncer, router Router, image string, upstreamName bool, req *WarmRequest) WarmImage {
	w := WarmImage{Image: image}
	t, ref, err := warmRoute(router, image, upstreamName)
	if err != nil {
		w.Error = err.Error()
		return w
	}
	repo := syncer.Repo(t)
	w.RepositoryName, w.Reference = repo.Name, ref
	f, err := sy.Fill(ctx, repo, ref, req.Platforms)
	w.ImageDigest, w.Bytes = f.Digest, f.Bytes
	if err == nil && req.Pin {
		_, err = s.pinImage(ctx, &PinImageRequest{RepositoryName: repo.Name, ImageID: ImageID{ImageDigest: f.Digest}})
		w.Pinned = err == nil
	}
	if err != nil {
		w.Error = err.Error()
		s.log.Warn("warm", zap.String("image", image), zap.Error(err))
	}
	return w
}

// warmRoute resolves an image to the upstream target and reference a
// client's pull would reach: a Berth name as the registry routes it, or an
// upstream name by its registry host (docker.io without one, as Docker and
// Kubernetes read it).
func warmRoute(router Router, image string, upstreamName bool) (upstream.Target, string, error) {
	name, ref := config.SplitRef(image)
	if strings.Contains(image, "@") {
		name, _ = config.SplitRef(name) // name:tag@digest: the digest is what runs
	}
	switch {
	case ref == "" && upstreamName:
		ref = "latest"
	case ref == "":
		return upstream.Target{}, "", fmt.Errorf("%q names no tag or digest; write name:tag or name@sha256:…", image)
	case registry.IsDigest(ref):
		if _, err := registry.ParseDigest(ref); err != nil {
			return upstream.Target{}, "", fmt.Errorf("%q names an invalid digest: %w", image, err)
		}
	case !registry.ValidTag(ref):
		return upstream.Target{}, "", fmt.Errorf("%q names an invalid tag", image)
	}
	if !upstreamName {
		t, err := router.RouteCanonical(name)
		if errors.Is(err, upstream.ErrNoRoute) {
			return t, "", fmt.Errorf("%s is a local repository of this node, not an upstream's: there is nothing to warm", name)
		}
		return t, ref, err
	}
	host, rest, ok := strings.Cut(name, "/")
	if !ok || !upstream.IsHostName(host) {
		host, rest = "docker.io", name
	}
	t, err := router.Route(host, rest)
	if errors.Is(err, upstream.ErrUnknownNamespace) {
		return t, "", fmt.Errorf("no upstream rule covers %s: no rule has registry: %s; add one to the config (upstreams) to warm it", image, host)
	}
	if err == nil && !registry.ValidName(t.Repo) {
		err = fmt.Errorf("%q is not a valid repository name (lower-case path components of letters, digits and separators)", rest)
	}
	return t, ref, err
}
