// Package errdefs holds the domain errors of Berth's backends: what went
// wrong, in words the user can act on, with no HTTP in them. The backends
// (store, local, reclaim, proxy, mirror) return them; each edge maps them
// once: registry.WriteError to the OCI wire errors, the admin API to ECR
// exception names.
//
// Each kind is a sentinel, checked with errors.Is. An *Error carries a kind,
// the message for the user and the cause (kept for logs and errors.Is,
// never sent to the user).
package errdefs

import (
	"errors"
	"fmt"
	"time"
)

// The kinds of domain errors.
var (
	// ErrNameInvalid: the repository name breaks the grammar.
	ErrNameInvalid = errors.New("invalid repository name")
	// ErrRepositoryUnknown: no such repository (or it is not served here).
	ErrRepositoryUnknown = errors.New("repository unknown")
	// ErrRepositoryExists: a create found the repository already there.
	ErrRepositoryExists = errors.New("repository already exists")
	// ErrManifestUnknown: no such manifest or tag in the repository.
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrManifestInvalid: a pushed manifest cannot be accepted as it is.
	ErrManifestInvalid = errors.New("manifest invalid")
	// ErrManifestBlobUnknown: a pushed manifest names a blob (or child
	// manifest) that is not in the repository.
	ErrManifestBlobUnknown = errors.New("manifest references a blob not in the repository")
	// ErrBlobUnknown: no such blob in the repository.
	ErrBlobUnknown = errors.New("blob unknown")
	// ErrUploadUnknown: no such upload session.
	ErrUploadUnknown = errors.New("upload unknown")
	// ErrDigestInvalid: content does not match its digest, or the digest is malformed.
	ErrDigestInvalid = errors.New("digest invalid")
	// ErrTagImmutable: the repository's tags are immutable and the tag exists.
	ErrTagImmutable = errors.New("tag immutable")
	// ErrInvalidParameter: a setting or filter given by the user is not valid.
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrNotWritable: the repository is a pull-through cache and cannot be written.
	ErrNotWritable = errors.New("repository not writable")
	// ErrUnsupported: the operation is not supported for this repository.
	ErrUnsupported = errors.New("unsupported")
	// ErrStoreFull: the store has no room for the content.
	ErrStoreFull = errors.New("store full")
	// ErrTooLarge: the content is larger than a configured cap allows.
	ErrTooLarge = errors.New("too large")
	// ErrTooMany: the caller holds as many of something (open upload
	// sessions) as a configured cap allows; it may try again once it
	// finishes or cancels some.
	ErrTooMany = errors.New("too many open")
	// ErrUpstreamUnavailable: the upstream could not be asked, or failed.
	ErrUpstreamUnavailable = errors.New("upstream unavailable")
	// ErrUpstreamTimeout: the upstream did not answer in time.
	ErrUpstreamTimeout = errors.New("upstream timeout")
	// ErrUpstreamBackoff: the upstream asked Berth to wait (a quota); an
	// error of this kind is an ErrUpstreamUnavailable too.
	ErrUpstreamBackoff = errors.New("upstream backing off")
)

// Error is a domain error: a kind, the message the user sees, and the cause.
type Error struct {
	// Kind is the sentinel the error matches with errors.Is.
	Kind error
	// Msg tells the user why and what to do.
	Msg string
	// RetryAfter, when set, is how long the user should wait before trying again.
	RetryAfter time.Duration
	// Err is the cause, kept for logs and errors.Is.
	Err error
}

// New returns an error of kind with a formatted message.
func New(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind with a formatted message and its cause.
func Wrap(kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Error is the message for the user followed, for logs, by the cause.
// The edges send the user Msg alone.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the error's kind (a backoff is an
// unavailable upstream too).
func (e *Error) Is(target error) bool {
	return target == e.Kind || (e.Kind == ErrUpstreamBackoff && target == ErrUpstreamUnavailable)
}

// KindOf returns the kind of err and the message for the user: the
// outermost *Error's, or else the first kind err matches with its text. It
// returns a nil kind for an error that is no domain error.
//
//lint:ignore ST1008 kind is a sentinel naming the error's kind, not a failure of KindOf
func KindOf(err error) (kind error, msg string, retryAfter time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, e.Msg, e.RetryAfter
	}
	// Every kind, the more specific ahead of the general.
	kinds := [...]error{
		ErrNameInvalid, ErrRepositoryUnknown, ErrRepositoryExists, ErrManifestUnknown,
		ErrManifestInvalid, ErrManifestBlobUnknown, ErrBlobUnknown, ErrUploadUnknown,
		ErrDigestInvalid, ErrTagImmutable, ErrInvalidParameter, ErrNotWritable, ErrUnsupported,
		ErrStoreFull, ErrTooLarge, ErrTooMany, ErrUpstreamBackoff, ErrUpstreamTimeout, ErrUpstreamUnavailable,
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k, err.Error(), 0
		}
	}
	return nil, "", 0
}

// RepositoryUnknown says that the repository name is not known here.
func RepositoryUnknown(name string) *Error {
	return New(ErrRepositoryUnknown, "repository %q is not known to this registry", name)
}

// ManifestUnknown says that no manifest answers to ref (a tag or digest).
func ManifestUnknown(ref string) *Error {
	return New(ErrManifestUnknown, "manifest %q is unknown", ref)
}

// BlobUnknown says that the blob of digest d is not there.
func BlobUnknown(d string) *Error {
	return New(ErrBlobUnknown, "blob %s is unknown", d)
}
