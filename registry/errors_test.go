package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"berth/errdefs"
)

// TestWriteErrorMapsDomainErrors pins the wire status and code of every kind
// of domain error, and that the user sees the domain error's message.
func TestWriteErrorMapsDomainErrors(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{errdefs.New(errdefs.ErrNameInvalid, "bad name"), 400, CodeNameInvalid, "bad name"},
		{errdefs.New(errdefs.ErrRepositoryUnknown, "no repo"), 404, CodeNameUnknown, "no repo"},
		{errdefs.New(errdefs.ErrRepositoryExists, "exists"), 409, CodeDenied, "exists"},
		{errdefs.New(errdefs.ErrManifestUnknown, "no manifest"), 404, CodeManifestUnknown, "no manifest"},
		{errdefs.New(errdefs.ErrManifestInvalid, "bad manifest"), 400, CodeManifestInvalid, "bad manifest"},
		{errdefs.New(errdefs.ErrManifestBlobUnknown, "missing child"), 400, CodeManifestBlobUnknown, "missing child"},
		{errdefs.New(errdefs.ErrBlobUnknown, "no blob"), 404, CodeBlobUnknown, "no blob"},
		{errdefs.New(errdefs.ErrUploadUnknown, "no upload"), 404, CodeBlobUploadUnknown, "no upload"},
		{errdefs.New(errdefs.ErrDigestInvalid, "mismatch"), 400, CodeDigestInvalid, "mismatch"},
		{errdefs.New(errdefs.ErrTagImmutable, "immutable"), 403, CodeDenied, "immutable"},
		{errdefs.New(errdefs.ErrInvalidParameter, "bad filter"), 400, CodeUnsupported, "bad filter"},
		{errdefs.New(errdefs.ErrNotWritable, "read only"), 405, CodeUnsupported, "read only"},
		{errdefs.New(errdefs.ErrUnsupported, "no such ability"), 405, CodeUnsupported, "no such ability"},
		{errdefs.New(errdefs.ErrStoreFull, "full"), 507, CodeInsufficientStorage, "full"},
		{errdefs.New(errdefs.ErrTooMany, "16 open"), 429, CodeTooManyRequests, "16 open"},
		{errdefs.New(errdefs.ErrUpstreamTimeout, "slow"), 504, CodeUpstreamTimeout, "slow"},
		{errdefs.Wrap(errdefs.ErrUpstreamUnavailable, context.DeadlineExceeded, "down"), 502, CodeUpstreamUnavailable, "down"},
		// The outermost domain error decides, not its cause.
		{errdefs.Wrap(errdefs.ErrUpstreamUnavailable, errdefs.ErrDigestInvalid, "bad bytes"), 502, CodeUpstreamUnavailable, "bad bytes"},
		// A bare sentinel, wrapped, says what the wrapping says.
		{fmt.Errorf("blob sha256:ab: %w", errdefs.ErrBlobUnknown), 404, CodeBlobUnknown, "blob sha256:ab: blob unknown"},
		{fmt.Errorf("disk on fire"), 500, CodeUnknown, "internal error"},
	}
	for _, c := range cases {
		t.Run(c.code+"/"+c.msg, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest(http.MethodGet, "/v2/", nil), c.err)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != c.status || body.Errors[0].Code != c.code || body.Errors[0].Message != c.msg {
				t.Fatalf("got %d %s %q, want %d %s %q", rec.Code, body.Errors[0].Code, body.Errors[0].Message, c.status, c.code, c.msg)
			}
		})
	}
}

func TestWriteErrorBackoffSaysWhenToRetry(t *testing.T) {
	err := &errdefs.Error{Kind: errdefs.ErrUpstreamBackoff, Msg: "wait", RetryAfter: 1500 * time.Millisecond}
	if !errors.Is(err, errdefs.ErrUpstreamUnavailable) {
		t.Fatal("a backoff is not an unavailable upstream")
	}
	rec := httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/v2/", nil), err)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("got %d, Retry-After %q; want 503, 2", rec.Code, rec.Header().Get("Retry-After"))
	}
}
