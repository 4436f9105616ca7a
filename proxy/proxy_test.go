package proxy

import (
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestPullThroughByPrefix(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, e.up.Host()+"/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	e.up.Reset()
	ref := hostOf(e.berth) + "/up/team/app:v1"
	got, err := crane.Pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := got.Digest()
	if d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	t.Logf("first pull: %v", e.up.Requests())
	e.up.Reset()
	if _, err = crane.Pull(ref); err != nil {
		t.Fatal(err)
	}
	if n := e.up.Count("total"); n != 0 {
		t.Fatalf("second pull made %d upstream requests, want 0: %v", n, e.up.Requests())
	}
}
