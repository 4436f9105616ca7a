package registry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// MaxRanges bounds the ranges of one request. Together with the rule that
// the ranges of a request may not add up to more than the blob (RFC 9110
// §14.2 asks a server to guard against many small or overlapping ranges),
// it bounds the work a multi-range request can make Berth do to sending
// the blob once.
const MaxRanges = 64

// ByteRange is one range of a blob: its first and last byte, inclusive.
type ByteRange struct{ Start, End int64 }

// Len is the number of bytes in the range.
func (r ByteRange) Len() int64 { return r.End - r.Start + 1 }

// ContentRange is the range's Content-Range value for a blob of size bytes.
func (r ByteRange) ContentRange(size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.Start, r.End, size)
}

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
	r, satisfiable, valid := parseSpec(spec, size)
	if !valid || !satisfiable {
		return 0, 0, false, rangeErr(h, size)
	}
	return r.Start, r.End, true, nil
}

// ParseRanges parses a Range header of one or more ranges ("bytes=0-99,
// 200-299,-10") against a blob of the given size. It returns nil when the
// header is empty and the whole blob should be sent. Of several ranges,
// those that start beyond the blob are left out (RFC 9110: the set is
// satisfiable if one of them is). A header that is not a byte-range set,
// that has no satisfiable range, more than MaxRanges ranges, or ranges
// that add up to more than the blob is a 416 RANGE_INVALID error.
func ParseRanges(h string, size int64) ([]ByteRange, error) {
	if h == "" {
		return nil, nil
	}
	set, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return nil, rangeErr(h, size)
	}
	if strings.Count(set, ",") >= MaxRanges {
		return nil, Errorf(http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid,
			"a request may ask for at most %d ranges; ask for fewer, larger ranges", MaxRanges).withRange(size)
	}
	specs := strings.Split(set, ",")
	out := make([]ByteRange, 0, len(specs))
	var sum int64
	for _, spec := range specs {
		r, satisfiable, valid := parseSpec(spec, size)
		if !valid || (!satisfiable && len(specs) == 1) {
			return nil, rangeErr(h, size)
		}
		if !satisfiable {
			continue
		}
		if sum += r.Len(); sum > size {
			return nil, Errorf(http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid,
				"the ranges asked for add up to more than the blob's %d bytes; ask for ranges that do not overlap", size).withRange(size)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, rangeErr(h, size)
	}
	return out, nil
}

// parseSpec parses one range of a byte-range set. valid is false when spec
// is not a range; satisfiable is false for a valid range that holds no byte
// of the blob.
func parseSpec(spec string, size int64) (r ByteRange, satisfiable, valid bool) {
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return r, false, false
	}
	if first == "" {
		// Suffix range: the last N bytes.
		n, err := parseOffset(last)
		if err != nil {
			return r, false, false
		}
		if n == 0 || size <= 0 {
			return r, false, true
		}
		return ByteRange{Start: size - min(n, size), End: size - 1}, true, true
	}
	s, err := parseOffset(first)
	if err != nil {
		return r, false, false
	}
	e := size - 1
	if last != "" {
		v, err := parseOffset(last)
		if err != nil || v < s {
			return r, false, false
		}
		e = min(e, v)
	}
	if s >= size {
		return r, false, true
	}
	return ByteRange{Start: s, End: e}, true, true
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
	return Errorf(http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid,
		"range %s cannot be satisfied for a blob of %d bytes", quoteTrunc(h), size).withRange(size)
}

// withRange adds the Content-Range a 416 answer carries: the blob's size.
func (e *Error) withRange(size int64) *Error {
	if size >= 0 {
		e.Header = http.Header{"Content-Range": {"bytes */" + strconv.FormatInt(size, 10)}}
	}
	return e
}
