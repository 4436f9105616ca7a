package registry

import (
	"crypto/sha512"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	t.Parallel()

	hex256 := testSHA256[len("sha256:"):]
	hex512 := testSHA512[len("sha512:"):]
	tests := []struct {
		name    string
		in      string
		alg     string
		wantErr bool
	}{
		{name: "sha256", in: testSHA256, alg: "sha256"},
		{name: "sha512", in: testSHA512, alg: "sha512"},
		{name: "sha256 all digits", in: "sha256:" + strings.Repeat("0", 64), alg: "sha256"},
		{name: "empty", in: "", wantErr: true},
		{name: "no colon", in: "sha256" + hex256, wantErr: true},
		{name: "hex only", in: hex256, wantErr: true},
		{name: "empty algorithm", in: ":" + hex256, wantErr: true},
		{name: "empty hex", in: "sha256:", wantErr: true},
		{name: "unknown algorithm", in: "md5:d41d8cd98f00b204e9800998ecf8427e", wantErr: true},
		{name: "sha384", in: "sha384:" + strings.Repeat("a", 96), wantErr: true},
		{name: "upper-case algorithm", in: "SHA256:" + hex256, wantErr: true},
		{name: "upper-case hex", in: "sha256:" + strings.ToUpper(hex256), wantErr: true},
		{name: "one upper-case hex digit", in: "sha256:A" + hex256[1:], wantErr: true},
		{name: "sha256 too short", in: "sha256:" + hex256[1:], wantErr: true},
		{name: "sha256 too long", in: testSHA256 + "0", wantErr: true},
		{name: "sha256 with sha512 length", in: "sha256:" + hex512, wantErr: true},
		{name: "sha512 with sha256 length", in: "sha512:" + hex256, wantErr: true},
		{name: "non hex", in: "sha256:" + strings.Repeat("z", 64), wantErr: true},
		{name: "second colon", in: "sha256:" + hex256[:63] + ":", wantErr: true},
		{name: "plus algorithm", in: "sha256+b64u:" + hex256, wantErr: true},
		{name: "whitespace", in: " " + testSHA256, wantErr: true},
		{name: "long garbage is truncated in message", in: strings.Repeat("x", 500) + ":y", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			d, err := ParseDigest(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDigest(%q) = %q, want error", tt.in, d)
				}
				if d != "" {
					t.Errorf("digest = %q on error, want empty", d)
				}
				var re *Error
				if !errors.As(err, &re) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if re.Status != http.StatusBadRequest || re.Code != CodeDigestInvalid {
					t.Errorf("error = %d %s, want 400 %s", re.Status, re.Code, CodeDigestInvalid)
				}
				if len(re.Message) > 200 {
					t.Errorf("message is %d bytes long, want it truncated", len(re.Message))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDigest(%q): unexpected error %v", tt.in, err)
			}
			if d.String() != tt.in {
				t.Errorf("String() = %q, want %q", d.String(), tt.in)
			}
			if d.Algorithm() != tt.alg {
				t.Errorf("Algorithm() = %q, want %q", d.Algorithm(), tt.alg)
			}
			if want := tt.in[len(tt.alg)+1:]; d.Hex() != want {
				t.Errorf("Hex() = %q, want %q", d.Hex(), want)
			}
			if !IsDigest(tt.in) {
				t.Errorf("IsDigest(%q) = false", tt.in)
			}
		})
	}
}

func TestIsDigest(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		ref  string
		want bool
	}{
		{name: "tag", ref: "latest", want: false},
		{name: "empty", ref: "", want: false},
		{name: "digest", ref: testSHA256, want: true},
		{name: "anything with colon", ref: "a:b", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsDigest(tt.ref); got != tt.want {
				t.Errorf("IsDigest(%q) = %v, want %v", tt.ref, got, tt.want)
			}
		})
	}
}

func TestFromBytesVerify(t *testing.T) {
	t.Parallel()

	sum512 := sha512.Sum512([]byte("hello"))
	tests := []struct {
		name   string
		data   []byte
		digest Digest // empty means FromBytes(data)
		want   Digest
	}{
		{name: "empty", data: nil, want: testSHA256},
		{name: "empty slice", data: []byte{}, want: testSHA256},
		{name: "hello", data: []byte("hello"), want: "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		{name: "binary", data: []byte{0x00, 0xff, 0x10}},
		{name: "sha512 empty", data: nil, digest: testSHA512},
		{name: "sha512 hello", data: []byte("hello"), digest: Digest("sha512:" + hexString(sum512[:]))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			d := tt.digest
			if d == "" {
				d = FromBytes(tt.data)
				if tt.want != "" && d != tt.want {
					t.Errorf("FromBytes = %q, want %q", d, tt.want)
				}
			}
			if _, err := ParseDigest(d.String()); err != nil {
				t.Errorf("digest %q does not parse: %v", d, err)
			}
			if !d.Verify(tt.data) {
				t.Errorf("%q.Verify(data) = false, want true", d)
			}
			tampered := append([]byte{}, tt.data...)
			tampered = append(tampered, 'x')
			if d.Verify(tampered) {
				t.Errorf("%q.Verify(tampered) = true, want false", d)
			}
		})
	}
}
