package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"berth/store"

	"go.uber.org/zap"
)

// PinImageRequest is pin-image's and unpin-image's request (Berth): a
// cached image, by digest or by the tag it has now. A pinned image is
// never evicted, as one cache.pinned names.
type PinImageRequest struct {
	RepositoryName string  `json:"repositoryName"`
	ImageID        ImageID `json:"imageId"`
}

// PinImageResponse answers pin-image and unpin-image.
type PinImageResponse struct {
	RepositoryName string `json:"repositoryName"`
	ImageDigest    string `json:"imageDigest"`
	Pinned         bool   `json:"pinned"`
	// PinnedAt is when it was pinned (pin-image).
	PinnedAt *time.Time `json:"pinnedAt,omitempty"`
}

// pinRecord is a stored pin's value.
type pinRecord struct {
	RepositoryName string    `json:"repositoryName"`
	PinnedAt       time.Time `json:"pinnedAt"`
}

// pinKey names a pin in the store: by upstream rule and remote name, so a
// rule's prefix may change without losing it.
func pinKey(up, repo, digest string) string { return fmt.Sprintf("%s %s@%s", up, repo, digest) }

// pinTarget resolves the request to a cached image's digest.
func (s *Service) pinTarget(ctx context.Context, req *PinImageRequest) (up, repo, name, digest string, err error) {
	ir, images, err := s.images(ctx, "repositoryName", req.RepositoryName)
	if err != nil {
		return "", "", "", "", err
	}
	if !ir.Cached() {
		return "", "", "", "", invalidf("repositoryName", "%s is a local repository: its images are never evicted, so there is nothing to pin", req.RepositoryName)
	}
	j, code, reason := find(images, req.ImageID)
	switch {
	case code == FailureImageNotFound:
		return "", "", "", "", notFound(CodeImageNotFound, "imageId: %s in %s", reason, req.RepositoryName)
	case code != "":
		return "", "", "", "", invalidf("imageId", "%s", reason)
	}
	return ir.Key.Upstream, ir.Key.Name, ir.Name, images[j].Digest, nil
}

func (s *Service) pinImage(ctx context.Context, req *PinImageRequest) (*PinImageResponse, error) {
	up, repo, name, digest, err := s.pinTarget(ctx, req)
	if err != nil {
		return nil, err
	}
	now := s.o.Now().UTC()
	v, err := json.Marshal(pinRecord{RepositoryName: name, PinnedAt: now})
	if err != nil {
		return nil, err
	}
	if err := s.o.Store.PutPolicy(ctx, store.PolicyPin, pinKey(up, repo, digest), v); err != nil {
		return nil, err
	}
	s.log.Info("image pinned", zap.String("repository", name), zap.String("digest", digest))
	return &PinImageResponse{RepositoryName: name, ImageDigest: digest, Pinned: true, PinnedAt: &now}, nil
}

func (s *Service) unpinImage(ctx context.Context, req *PinImageRequest) (*PinImageResponse, error) {
	up, repo, name, digest, err := s.pinTarget(ctx, req)
	if err != nil {
		return nil, err
	}
	key := pinKey(up, repo, digest)
	if _, err := s.o.Store.GetPolicy(ctx, store.PolicyPin, key); errors.Is(err, store.ErrNotFound) {
		return nil, notFound(CodeImageNotFound, "%s@%s is not pinned through the API (pins in cache.pinned are the config file's)", name, digest)
	} else if err != nil {
		return nil, err
	}
	if err := s.o.Store.DeletePolicy(ctx, store.PolicyPin, key); err != nil {
		return nil, err
	}
	s.log.Info("image unpinned", zap.String("repository", name), zap.String("digest", digest))
	return &PinImageResponse{RepositoryName: name, ImageDigest: digest}, nil
}

// StoredPin reports whether a cached image was pinned through the API
// (pin-image). Capacity eviction asks it, beside cache.pinned.
func (s *Service) StoredPin(ctx context.Context, up, repo, digest string) bool {
	_, err := s.o.Store.GetPolicy(ctx, store.PolicyPin, pinKey(up, repo, digest))
	return err == nil
}
