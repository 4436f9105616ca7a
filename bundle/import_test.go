package bundle

import (
	"context"
	"errors"
	"io"
	"testing"

	"berth/errdefs"
)

// A read failure of the request's own (cancelled, broken connection)
// keeps its cause and is no refusal of the bundle; a cut tar is.
func TestReadFailedKeepsTheCause(t *testing.T) {
	err := readFailed(context.Canceled, "reading manifest %s", "x")
	if !errors.Is(err, context.Canceled) || errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("a cancelled read: %v", err)
	}
	err = readFailed(io.ErrUnexpectedEOF, "reading manifest %s", "x")
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("a cut bundle: %v", err)
	}
	if err := readFailed(nil, "blob ends"); !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("a short entry: %v", err)
	}
}
