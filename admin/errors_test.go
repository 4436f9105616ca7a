package admin

import (
	"fmt"
	"net/http"
	"testing"

	"berth/errdefs"
	"berth/reclaim"
)

// TestAPIErrorMapsDomainErrors pins the ECR exception (and status) of the
// domain errors the layers below return, and that the message is kept.
func TestAPIErrorMapsDomainErrors(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{errdefs.RepositoryUnknown("a/b"), 404, CodeRepositoryNotFound, `repository "a/b" is not known to this registry`},
		{errdefs.ManifestUnknown("v1"), 404, CodeImageNotFound, `manifest "v1" is unknown`},
		{errdefs.New(errdefs.ErrRepositoryExists, "repository a/b already exists"), 409, CodeRepositoryAlreadyExists, "repository a/b already exists"},
		{errdefs.New(errdefs.ErrInvalidParameter, "invalid exclusion filter"), 400, CodeInvalidParameter, "invalid exclusion filter"},
		{errdefs.New(errdefs.ErrNameInvalid, "invalid repository name A"), 400, CodeInvalidParameter, "invalid repository name A"},
		{errdefs.New(errdefs.ErrStoreFull, "no room"), http.StatusInsufficientStorage, CodeServer, "no room"},
		{errdefs.Wrap(errdefs.ErrUpstreamTimeout, fmt.Errorf("dial"), "slow"), http.StatusGatewayTimeout, CodeServer, "slow"},
		{fmt.Errorf("%w: repository a/b holds 2 images", reclaim.ErrRepositoryNotEmpty), 409, CodeRepositoryNotEmpty,
			"repository is not empty: repository a/b holds 2 images"},
	}
	s := &Service{}
	for _, c := range cases {
		got := s.apiError(c.err)
		if got.Status != c.status || got.Code != c.code || got.Message != c.msg {
			t.Errorf("%v: got %d %s %q, want %d %s %q", c.err, got.Status, got.Code, got.Message, c.status, c.code, c.msg)
		}
	}
}
