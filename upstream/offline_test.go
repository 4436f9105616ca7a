package upstream

import (
	"context"
	"errors"
	"testing"

	"berth/test/testreg"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// An offline rule's client fails every call at once with ErrOffline and
// sends the upstream nothing: no token dance, no manifest, blob or tag
// request.
func TestOfflineSendsNothing(t *testing.T) {
	reg := testreg.Start(t)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := reg.Push(t, "team/app", "v1", img).String()
	reg.Reset()
	u, err := New(Rule{Name: "up", Prefix: "up", URL: reg.URL, Offline: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"HeadManifest": func() error { _, err := u.HeadManifest(ctx, "team/app", "v1"); return err },
		"GetManifest":  func() error { _, _, err := u.GetManifest(ctx, "team/app", d); return err },
		"GetBlobRange": func() error { _, _, err := u.GetBlobRange(ctx, "team/app", d, 0, -1); return err },
		"HeadBlob":     func() error { _, err := u.HeadBlob(ctx, "team/app", d); return err },
		"ListTags":     func() error { _, err := u.ListTags(ctx, "team/app"); return err },
		"GetReferrers": func() error { _, err := u.GetReferrers(ctx, "team/app", d); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrOffline) {
			t.Errorf("%s: %v, want ErrOffline", name, err)
		}
	}
	if n := reg.Count("total"); n != 0 {
		t.Fatalf("the upstream saw %d requests: %v", n, reg.Requests())
	}
}
