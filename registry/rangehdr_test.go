package registry

import (
	"errors"
	"net/http"
	"testing"
)

func TestParseRange(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		header  string
		size    int64
		start   int64
		end     int64
		partial bool
		wantErr bool
	}{
		{name: "empty header", header: "", size: 100},
		{name: "empty header zero size", header: "", size: 0},
		{name: "open ended", header: "bytes=10-", size: 100, start: 10, end: 99, partial: true},
		{name: "open ended from zero", header: "bytes=0-", size: 100, start: 0, end: 99, partial: true},
		{name: "open ended last byte", header: "bytes=99-", size: 100, start: 99, end: 99, partial: true},
		{name: "closed", header: "bytes=10-19", size: 100, start: 10, end: 19, partial: true},
		{name: "single byte", header: "bytes=5-5", size: 100, start: 5, end: 5, partial: true},
		{name: "whole blob", header: "bytes=0-99", size: 100, start: 0, end: 99, partial: true},
		{name: "end beyond size clamps", header: "bytes=10-1000", size: 100, start: 10, end: 99, partial: true},
		{name: "end at max int64 clamps", header: "bytes=0-9223372036854775807", size: 100, start: 0, end: 99, partial: true},
		{name: "surrounding spaces", header: "bytes= 10-19 ", size: 100, start: 10, end: 19, partial: true},
		{name: "suffix", header: "bytes=-10", size: 100, start: 90, end: 99, partial: true},
		{name: "suffix whole blob", header: "bytes=-100", size: 100, start: 0, end: 99, partial: true},
		{name: "suffix longer than blob", header: "bytes=-1000", size: 100, start: 0, end: 99, partial: true},
		{name: "suffix one byte", header: "bytes=-1", size: 1, start: 0, end: 0, partial: true},
		{name: "suffix zero", header: "bytes=-0", size: 100, wantErr: true},
		{name: "start equals size", header: "bytes=100-", size: 100, wantErr: true},
		{name: "start beyond size", header: "bytes=200-300", size: 100, wantErr: true},
		{name: "end before start", header: "bytes=20-10", size: 100, wantErr: true},
		{name: "zero size open ended", header: "bytes=0-", size: 0, wantErr: true},
		{name: "zero size closed", header: "bytes=0-0", size: 0, wantErr: true},
		{name: "zero size suffix", header: "bytes=-1", size: 0, wantErr: true},
		{name: "multiple ranges", header: "bytes=0-1,5-6", size: 100, wantErr: true},
		{name: "multiple ranges with space", header: "bytes=0-1, 5-6", size: 100, wantErr: true},
		{name: "wrong unit", header: "items=0-1", size: 100, wantErr: true},
		{name: "upper-case unit", header: "Bytes=0-1", size: 100, wantErr: true},
		{name: "no equals", header: "bytes 0-1", size: 100, wantErr: true},
		{name: "no dash", header: "bytes=10", size: 100, wantErr: true},
		{name: "only dash", header: "bytes=-", size: 100, wantErr: true},
		{name: "nothing after unit", header: "bytes=", size: 100, wantErr: true},
		{name: "garbage", header: "garbage", size: 100, wantErr: true},
		{name: "letters", header: "bytes=a-b", size: 100, wantErr: true},
		{name: "negative start", header: "bytes=-5-10", size: 100, wantErr: true},
		{name: "plus sign", header: "bytes=+5-10", size: 100, wantErr: true},
		{name: "double dash", header: "bytes=5--10", size: 100, wantErr: true},
		{name: "inner space", header: "bytes=5 -10", size: 100, wantErr: true},
		{name: "hex", header: "bytes=0x10-", size: 100, wantErr: true},
		{name: "start overflows int64", header: "bytes=9223372036854775808-", size: 100, wantErr: true},
		{name: "end overflows int64", header: "bytes=0-9223372036854775808", size: 100, wantErr: true},
		{name: "suffix overflows int64", header: "bytes=-9223372036854775808", size: 100, wantErr: true},
		{name: "twenty digits", header: "bytes=0-99999999999999999999", size: 100, wantErr: true},
		{name: "huge number of digits", header: "bytes=0-" + "1000000000000000000000000000000000000000", size: 100, wantErr: true},
		{name: "huge blob", header: "bytes=9223372036854775806-", size: 9223372036854775807, start: 9223372036854775806, end: 9223372036854775806, partial: true},
		{name: "huge blob suffix", header: "bytes=-9223372036854775807", size: 9223372036854775807, start: 0, end: 9223372036854775806, partial: true},
		{name: "negative size", header: "bytes=-5", size: -10, wantErr: true},
		{name: "negative size open ended", header: "bytes=0-", size: -10, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			start, end, partial, err := ParseRange(tt.header, tt.size)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseRange(%q, %d) = %d, %d, %v; want error", tt.header, tt.size, start, end, partial)
				}
				var re *Error
				if !errors.As(err, &re) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if re.Status != http.StatusRequestedRangeNotSatisfiable {
					t.Errorf("status = %d, want %d", re.Status, http.StatusRequestedRangeNotSatisfiable)
				}
				if re.Code != CodeRangeInvalid {
					t.Errorf("code = %s, want %s", re.Code, CodeRangeInvalid)
				}
				if partial {
					t.Error("partial = true on error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRange(%q, %d): unexpected error %v", tt.header, tt.size, err)
			}
			if start != tt.start || end != tt.end || partial != tt.partial {
				t.Errorf("ParseRange(%q, %d) = %d, %d, %v; want %d, %d, %v",
					tt.header, tt.size, start, end, partial, tt.start, tt.end, tt.partial)
			}
		})
	}
}
