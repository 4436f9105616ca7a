package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestKindOfTakesTheOutermostDomainError(t *testing.T) {
	cause := New(ErrDigestInvalid, "bytes do not match")
	err := fmt.Errorf("fill: %w", Wrap(ErrUpstreamUnavailable, cause, "upstream hub failed"))
	kind, msg, _ := KindOf(err)
	if kind != ErrUpstreamUnavailable || msg != "upstream hub failed" {
		t.Fatalf("KindOf = %v, %q", kind, msg)
	}
	if !errors.Is(err, ErrUpstreamUnavailable) || !errors.Is(err, ErrDigestInvalid) {
		t.Fatal("errors.Is does not see the kind and its cause")
	}
	if got := err.Error(); got != "fill: upstream hub failed: bytes do not match" {
		t.Fatalf("Error() = %q; the log should carry the cause", got)
	}
}

func TestKindOfBareSentinelAndOthers(t *testing.T) {
	if kind, msg, _ := KindOf(fmt.Errorf("tag v1: %w", ErrManifestUnknown)); kind != ErrManifestUnknown || msg != "tag v1: manifest unknown" {
		t.Fatalf("wrapped sentinel: %v, %q", kind, msg)
	}
	if kind, _, _ := KindOf(context.Canceled); kind != nil {
		t.Fatalf("context.Canceled has kind %v", kind)
	}
}

func TestBackoffIsUnavailableAndCarriesItsWait(t *testing.T) {
	err := &Error{Kind: ErrUpstreamBackoff, Msg: "wait", RetryAfter: time.Minute}
	if !errors.Is(err, ErrUpstreamBackoff) || !errors.Is(err, ErrUpstreamUnavailable) || errors.Is(err, ErrUpstreamTimeout) {
		t.Fatal("a backoff must match itself and ErrUpstreamUnavailable only")
	}
	if kind, _, retry := KindOf(err); kind != ErrUpstreamBackoff || retry != time.Minute {
		t.Fatalf("KindOf = %v, %v", kind, retry)
	}
}
