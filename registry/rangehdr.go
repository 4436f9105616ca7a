package registry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ParseRange parses a single-range Range header ("bytes=N-", "bytes=N-M" or
// "bytes=-N") against a blob of the given size. It returns the first and last
// byte offsets (inclusive). ok is false when the header is empty and the
// whole blob should be sent. A range that cannot be satisfied is a 416
// RANGE_INVALID error.
func ParseRange(h string, size int64) (start, end int64, ok bool, err error) {
	if h == "" {
		return 0, 0, false, nil
	}
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, rangeErr(h, size)
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, rangeErr(h, size)
	}
	switch {
	case first == "":
		// Suffix range: the last N bytes.
		n, perr := parseOffset(last)
		if perr != nil || n == 0 || size <= 0 {
			return 0, 0, false, rangeErr(h, size)
		}
		if n > size {
			n = size
		}
		return size - n, size - 1, true, nil
	default:
		s, perr := parseOffset(first)
		if perr != nil || s >= size {
			return 0, 0, false, rangeErr(h, size)
		}
		e := size - 1
		if last != "" {
			v, perr := parseOffset(last)
			if perr != nil || v < s {
				return 0, 0, false, rangeErr(h, size)
			}
			if v < e {
				e = v
			}
		}
		return s, e, true, nil
	}
}

func parseOffset(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, fmt.Errorf("bad offset")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad offset")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func rangeErr(h string, size int64) *Error {
	e := Errorf(http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid,
		"range %s cannot be satisfied for a blob of %d bytes", quoteTrunc(h), size)
	return e
}
