package admin

import (
	"context"
	"fmt"

	"berth/store"

	"go.uber.org/zap"
)

// RotateKeyRequest is rotate-key's request: a key file on the node.
type RotateKeyRequest struct {
	NewKeyFile string `json:"newKeyFile"`
}

// RotateKeyResponse answers rotate-key.
type RotateKeyResponse struct {
	store.Rotation
	Note string `json:"note"`
}

// rotateKey makes the key in NewKeyFile the store's master key: every data
// key is rewrapped, online (store.RotateKey). The file stays on the node;
// the key never crosses the API.
func (s *Service) rotateKey(ctx context.Context, req *RotateKeyRequest) (*RotateKeyResponse, error) {
	if req.NewKeyFile == "" {
		return nil, invalidf("newKeyFile", "required: the path, on the node, of a file with the new key as 64 hex characters (openssl rand -hex 32 > FILE && chmod 600 FILE)")
	}
	if s.o.RotateKey == nil {
		return nil, invalidf("", "encryption at rest is off on this node: set encryption.keyFile in its config and restart it first")
	}
	r, err := s.o.RotateKey(ctx, req.NewKeyFile)
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("the node now uses key %s; set encryption.keyFile: %s in its config before it next starts (it refuses to start with the old key), then remove the old key file", r.To, r.ToFile)
	if r.Unchanged {
		note = fmt.Sprintf("%s is the store's key already: nothing to rewrap", r.ToFile)
	}
	s.log.Warn("encryption key rotated", zap.String("from", r.From), zap.String("to", r.To), zap.Int("blobs", r.Blobs), zap.Int("manifests", r.Manifests), zap.Int("scans", r.Scans))
	return &RotateKeyResponse{Rotation: r, Note: note}, nil
}
