package proxy

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"berth/test/testreg"
)

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestPrefetcherKeepsOrderAndErrors(t *testing.T) {
	data := testreg.Bytes(3*prefetchChunk+12345, 9)
	boom := errors.New("boom")
	tests := []struct {
		name    string
		src     io.Reader
		want    []byte
		wantErr error
	}{
		{name: "whole", src: bytes.NewReader(data), want: data, wantErr: io.EOF},
		{name: "one byte reads", src: iotest.OneByteReader(bytes.NewReader(data[:5000])), want: data[:5000], wantErr: io.EOF},
		{name: "error after data", src: io.MultiReader(bytes.NewReader(data[:70000]), iotest.ErrReader(boom)), want: data[:70000], wantErr: boom},
		{name: "empty", src: bytes.NewReader(nil), want: nil, wantErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &closeCounter{Reader: tt.src}
			p := newPrefetcher(src)
			got, err := io.ReadAll(p)
			if tt.wantErr == io.EOF && err != nil || tt.wantErr != io.EOF && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			p.Close()
			p.Close()
			if src.closed != 1 {
				t.Fatalf("source closed %d times", src.closed)
			}
		})
	}
}

func TestPrefetcherCloseEarly(t *testing.T) {
	src := &closeCounter{Reader: bytes.NewReader(testreg.Bytes(10*prefetchChunk, 3))}
	p := newPrefetcher(src)
	if _, err := io.ReadFull(p, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil || src.closed != 1 {
		t.Fatalf("close: %v, source closed %d times", err, src.closed)
	}
}
