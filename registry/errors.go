package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"berth/errdefs"
)

// Error is the one error type handlers return to the client. The mux turns
// it into the distribution spec's body: {"errors":[{"code":…,"message":…}]}.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, is sent as a Retry-After header (seconds).
	RetryAfter time.Duration
	// Header holds extra response headers, e.g. WWW-Authenticate.
	Header http.Header
	// Err is the cause, kept for logs and errors.Is; it is never sent.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Error codes from the OCI distribution spec, plus TOOMANYREQUESTS (Docker's)
// and the codes Berth uses for upstream failures.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeDenied              = "DENIED"
	CodeUnsupported         = "UNSUPPORTED"
	CodeTooManyRequests     = "TOOMANYREQUESTS"
	CodeRangeInvalid        = "RANGE_INVALID"
	CodeUnknown             = "UNKNOWN"
	CodeUpstreamUnavailable = "UPSTREAM_UNAVAILABLE"
	CodeUpstreamTimeout     = "UPSTREAM_TIMEOUT"
)

// Errorf builds an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Helpers for the errors every handler needs.
func ErrNameInvalid(msg string) *Error {
	return Errorf(http.StatusBadRequest, CodeNameInvalid, "%s", msg)
}
func ErrNameUnknown(name string) *Error { return asError(errdefs.RepositoryUnknown(name)) }
func ErrManifestUnknown(ref string) *Error {
	return asError(errdefs.ManifestUnknown(ref))
}
func ErrBlobUnknown(dgst string) *Error { return asError(errdefs.BlobUnknown(dgst)) }
func ErrDigestInvalid(msg string) *Error {
	return Errorf(http.StatusBadRequest, CodeDigestInvalid, "%s", msg)
}
func ErrUnsupported(msg string) *Error {
	return Errorf(http.StatusMethodNotAllowed, CodeUnsupported, "%s", msg)
}

// errorBody is the wire form of an error response.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CodeInsufficientStorage is the code of a store that has no room (507).
const CodeInsufficientStorage = "INSUFFICIENT_STORAGE"

// asError turns any error into an *Error: the backends' domain errors
// (package errdefs) get their wire status and code here, and only here;
// unknown errors are a 500.
func asError(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	kind, msg, retry := errdefs.KindOf(err)
	if kind == nil {
		return &Error{Status: http.StatusInternalServerError, Code: CodeUnknown, Message: "internal error", Err: err}
	}
	status, code := wire(kind)
	return &Error{Status: status, Code: code, Message: msg, RetryAfter: retry, Err: err}
}

// wire is the OCI status and code of a kind of domain error.
func wire(kind error) (status int, code string) {
	switch kind {
	case errdefs.ErrNameInvalid:
		return http.StatusBadRequest, CodeNameInvalid
	case errdefs.ErrRepositoryUnknown:
		return http.StatusNotFound, CodeNameUnknown
	case errdefs.ErrRepositoryExists:
		return http.StatusConflict, CodeDenied
	case errdefs.ErrManifestUnknown:
		return http.StatusNotFound, CodeManifestUnknown
	case errdefs.ErrManifestInvalid:
		return http.StatusBadRequest, CodeManifestInvalid
	case errdefs.ErrManifestBlobUnknown:
		return http.StatusBadRequest, CodeManifestBlobUnknown
	case errdefs.ErrBlobUnknown:
		return http.StatusNotFound, CodeBlobUnknown
	case errdefs.ErrUploadUnknown:
		return http.StatusNotFound, CodeBlobUploadUnknown
	case errdefs.ErrDigestInvalid:
		return http.StatusBadRequest, CodeDigestInvalid
	case errdefs.ErrTagImmutable:
		return http.StatusForbidden, CodeDenied
	case errdefs.ErrInvalidParameter:
		return http.StatusBadRequest, CodeUnsupported
	case errdefs.ErrNotWritable, errdefs.ErrUnsupported:
		return http.StatusMethodNotAllowed, CodeUnsupported
	case errdefs.ErrStoreFull:
		return http.StatusInsufficientStorage, CodeInsufficientStorage
	case errdefs.ErrTooLarge:
		return http.StatusRequestEntityTooLarge, CodeSizeInvalid
	case errdefs.ErrTooMany:
		return http.StatusTooManyRequests, CodeTooManyRequests
	case errdefs.ErrUpstreamBackoff:
		return http.StatusServiceUnavailable, CodeUpstreamUnavailable
	case errdefs.ErrUpstreamTimeout:
		return http.StatusGatewayTimeout, CodeUpstreamTimeout
	case errdefs.ErrUpstreamUnavailable:
		return http.StatusBadGateway, CodeUpstreamUnavailable
	}
	return http.StatusInternalServerError, CodeUnknown
}

// WriteError writes err as the spec's JSON error body. It is the only place
// that writes errors; HEAD requests get the status and headers only. A 5xx
// answer of the registry API on HTTP/1.x also carries the message as its
// status line's reason phrase (see reason.go).
func WriteError(w http.ResponseWriter, r *http.Request, err error) *Error {
	re := asError(err)
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: re.Code, Message: re.Message}}})
	h := w.Header()
	h.Del("Content-Range")
	h.Del("Docker-Content-Digest")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	for k, v := range re.Header {
		h[k] = v
	}
	if re.RetryAfter > 0 {
		secs := int((re.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	if rec, ok := w.(*recorder); ok && rec.writeWithReason(r, re.Status, re.Message, body) {
		return re
	}
	w.WriteHeader(re.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return re
}
