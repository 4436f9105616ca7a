package admin

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"berth/bundle"

	"go.uber.org/zap"
)

// Bundles are export and import (Berth's own endpoints, POST
// Prefix+"export" and Prefix+"import"): they stream, so they are served
// beside the JSON operations.
type Bundles struct {
	Store bundle.Store
	// Pusher takes local images, as a push does.
	Pusher bundle.Pusher
	// SyncRefs names the images a sync rule covers.
	SyncRefs func(ctx context.Context, rule string) ([]string, error)
	// VerifyKeys, when set and returning keys, are the node's own
	// (bundles.verifyKeys): every import must be signed by one of them,
	// and the client's VerifyKeyHeader is not used.
	VerifyKeys func() ([]ed25519.PublicKey, error)
}

// ExportRequest is export's request: bundle.ExportRequest, or a sync rule.
type ExportRequest struct {
	bundle.ExportRequest
	// SyncRule exports every image the rule covers.
	SyncRule string `json:"syncRule,omitempty"`
}

// VerifyKeyHeader carries import's Ed25519 public key, base64.
const VerifyKeyHeader = "X-Berth-Verify-Key"

// maxExportRequest bounds export's request (an old bundle's blob list).
const maxExportRequest = 64 << 20

// ExportHandler streams a bundle of the images asked for. Everything is
// resolved before the first byte, so a refusal is a JSON error.
func (s *Service) ExportHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := checkOrigin(r); e != nil {
			writeError(w, e)
			return
		}
		b := s.o.Bundles
		var req ExportRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxExportRequest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, invalidf("", "the request is not a valid export request: %v", err))
			return
		}
		if req.SyncRule != "" {
			refs, err := b.SyncRefs(r.Context(), req.SyncRule)
			if err != nil {
				writeError(w, s.apiError(err))
				return
			}
			req.Refs = append(req.Refs, refs...)
		}
		plan, err := b.Store.PlanExport(r.Context(), req.ExportRequest)
		if err != nil {
			writeError(w, s.apiError(err))
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		if err := b.Store.WriteExport(r.Context(), plan, w, nil); err != nil {
			// The stream is cut short; the client sees a broken tar.
			s.log.Warn("export cut short", zap.Error(err))
			panic(http.ErrAbortHandler)
		}
	})
}

// ImportHandler reads a bundle (Content-Type application/x-tar) and
// stores its images; with VerifyKeyHeader the signature must verify.
func (s *Service) ImportHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-tar" {
			writeError(w, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
				Message: "import takes the bundle as the body, with Content-Type: application/x-tar"})
			return
		}
		keys, e := s.importKeys(r)
		if e != nil {
			writeError(w, e)
			return
		}
		// A bundle takes as long as it takes: no read deadline (the
		// listener's bounds small requests).
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		b := s.o.Bundles
		res, err := b.Store.Import(r.Context(), r.Body, b.Pusher, keys...)
		if err != nil {
			if !errors.Is(err, context.Canceled) && r.Context().Err() == nil { // a client that left is no refusal
				s.log.Warn("import refused", zap.Error(err))
			}
			writeError(w, s.apiError(fmt.Errorf("import: %w", err)))
			return
		}
		s.log.Info("bundle imported", zap.Strings("images", res.Images), zap.Int("blobs", res.Blobs), zap.Int64("bytes", res.Bytes))
		writeJSON(w, http.StatusOK, res)
	})
}

// importKeys are the keys an import is verified with: the node's when it
// has any, else the client's VerifyKeyHeader (none: unsigned bundles are
// taken).
func (s *Service) importKeys(r *http.Request) ([]ed25519.PublicKey, *Error) {
	if f := s.o.Bundles.VerifyKeys; f != nil {
		keys, err := f()
		if err != nil {
			return nil, s.apiError(fmt.Errorf("import: the node's bundles.verifyKeys: %w", err))
		}
		if len(keys) > 0 {
			return keys, nil
		}
	}
	k := r.Header.Get(VerifyKeyHeader)
	if k == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, invalidf("verifyKey", "%s is not a base64 Ed25519 public key", VerifyKeyHeader)
	}
	return []ed25519.PublicKey{key}, nil
}
