package bundle

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, _ := GenerateKey()
	key, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ParsePublicKey(pub)
	other, _ := ParsePublicKey(otherPub)
	index := []byte(`{"schemaVersion":2,"manifests":[]}`)
	sig := Sign(key, index)
	if err := Verify(pk, index, sig); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, c := range map[string]struct {
		pub        []byte
		index, sig []byte
		want       string
	}{
		"wrong key":     {otherPub, index, sig, "signed by key"},
		"changed index": {pub, []byte(`{"schemaVersion":2,"manifests":[{}]}`), sig, "changed after it was signed"},
		"unsigned":      {pub, index, nil, "not signed"},
	} {
		k := pk
		if bytes.Equal(c.pub, otherPub) {
			k = other
		}
		err := Verify(k, c.index, c.sig)
		if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrSignature saying %q", name, err, c.want)
		}
	}
	if _, err := ParsePublicKey(priv); err == nil {
		t.Error("a private key parsed as a public one")
	}
}

func TestWriterContents(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []byte(`{"schemaVersion":2}`), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("layer bytes")
	d := Digest(body)
	if err := w.Blob(d, int64(len(body)), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	index, blobs, err := Contents(&buf)
	if err != nil || string(index) != `{"schemaVersion":2}` || len(blobs) != 1 || blobs[0] != d {
		t.Fatalf("Contents: %s %v %v", index, blobs, err)
	}
	if _, err := BlobPath("sha512:abc"); err == nil {
		t.Error("a sha512 digest has a layout path")
	}
}
