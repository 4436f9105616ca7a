package admin

import (
	"context"
	"time"

	"berth/store"

	"go.uber.org/zap"
)

// RevokeTokensRequest is revoke-tokens' request.
type RevokeTokensRequest struct {
	UserName string `json:"userName"`
}

// RevokeTokensResponse answers revoke-tokens.
type RevokeTokensResponse struct {
	UserName  string    `json:"userName"`
	RevokedAt time.Time `json:"revokedAt"`
	Note      string    `json:"note"`
}

// revokeTokens ends every token the user holds now, for incident response:
// the revocation is stored (it survives restarts) and put in force at once.
// The user's password keeps working; change it in the htpasswd file to
// lock them out.
func (s *Service) revokeTokens(ctx context.Context, req *RevokeTokensRequest) (*RevokeTokensResponse, error) {
	if req.UserName == "" {
		return nil, invalidf("userName", "required")
	}
	at := s.o.Now().UTC()
	mark := at.Format(time.RFC3339Nano)
	if err := s.o.Store.PutPolicy(ctx, store.PolicyRevocation, req.UserName, []byte(mark)); err != nil {
		return nil, err
	}
	if s.o.OnRevokeTokens != nil {
		s.o.OnRevokeTokens(req.UserName, mark)
	}
	s.log.Warn("tokens revoked", zap.String("user", req.UserName))
	return &RevokeTokensResponse{UserName: req.UserName, RevokedAt: at,
		Note: "every token issued to the user before now is refused; the password still works (change it in the htpasswd file to lock the user out)"}, nil
}
