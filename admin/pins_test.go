package admin_test

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"berth/admin"
	"berth/admin/admintest"
)

// TestPinImage: pin-image pins a cached image by tag or digest, and
// describe-images and StoredPin say so; unpin-image undoes it; a local
// image or an image not there is refused with its reason.
func TestPinImage(t *testing.T) {
	n := admintest.New(t)
	img := admintest.NewImage("alpine", 1)
	n.Cache("docker-hub", "library/alpine", admintest.Epoch, img, "3.20")
	n.Push("private/app", admintest.Epoch, admintest.NewImage("app", 1), "v1")

	var pin admin.PinImageResponse
	n.OK("pin-image", admin.PinImageRequest{RepositoryName: "docker-hub/library/alpine", ImageID: admin.ImageID{ImageTag: "3.20"}}, &pin)
	if !pin.Pinned || pin.ImageDigest != img.Digest || pin.RepositoryName != "docker-hub/library/alpine" || pin.PinnedAt == nil {
		t.Fatalf("pin-image: %+v", pin)
	}
	if !n.Service.StoredPin(t.Context(), "docker-hub", "library/alpine", img.Digest) {
		t.Fatal("StoredPin: false after pin-image")
	}
	var di admin.DescribeImagesResponse
	n.OK("describe-images", admin.DescribeImagesRequest{RepositoryName: "docker-hub/library/alpine"}, &di)
	if len(di.ImageDetails) != 1 || !di.ImageDetails[0].Pinned {
		t.Fatalf("describe-images after pin-image: %+v", di.ImageDetails)
	}
	n.OK("unpin-image", admin.PinImageRequest{RepositoryName: "docker-hub/library/alpine", ImageID: admin.ImageID{ImageDigest: img.Digest}}, &pin)
	if pin.Pinned || n.Service.StoredPin(t.Context(), "docker-hub", "library/alpine", img.Digest) {
		t.Fatalf("unpin-image: %+v, still pinned", pin)
	}
	di = admin.DescribeImagesResponse{}
	n.OK("describe-images", admin.DescribeImagesRequest{RepositoryName: "docker-hub/library/alpine"}, &di)
	if di.ImageDetails[0].Pinned {
		t.Fatal("describe-images: still pinned after unpin-image")
	}
	for _, c := range []struct {
		verb   string
		req    admin.PinImageRequest
		status int
		code   string
	}{
		{"unpin-image", admin.PinImageRequest{RepositoryName: "docker-hub/library/alpine", ImageID: admin.ImageID{ImageTag: "3.20"}}, 404, admin.CodeImageNotFound},
		{"pin-image", admin.PinImageRequest{RepositoryName: "private/app", ImageID: admin.ImageID{ImageTag: "v1"}}, 400, admin.CodeInvalidParameter},
		{"pin-image", admin.PinImageRequest{RepositoryName: "docker-hub/library/alpine", ImageID: admin.ImageID{ImageTag: "nope"}}, 404, admin.CodeImageNotFound},
		{"pin-image", admin.PinImageRequest{RepositoryName: "docker-hub/library/alpine"}, 400, admin.CodeInvalidParameter},
	} {
		status, body := n.Call(c.verb, c.req)
		if status != c.status || !contains(body, c.code) {
			t.Errorf("%s %+v: %d %s, want %d %s", c.verb, c.req, status, body, c.status, c.code)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// TestDescribeRepositoriesIncludeCached: with includeCached the listing
// has the cached repositories with their upstream, and image counts.
func TestDescribeRepositoriesIncludeCached(t *testing.T) {
	n := admintest.New(t)
	n.Cache("docker-hub", "library/alpine", admintest.Epoch, admintest.NewImage("alpine", 1), "3.20")
	n.Cache("docker-hub", "library/alpine", admintest.Epoch, admintest.NewImage("alpine2", 1), "3.21")
	n.Push("private/app", admintest.Epoch, admintest.NewImage("app", 1), "v1")
	var plain, all admin.DescribeRepositoriesResponse
	n.OK("describe-repositories", admin.DescribeRepositoriesRequest{}, &plain)
	if len(plain.Repositories) != 1 || plain.Repositories[0].ImageCount != nil {
		t.Fatalf("describe-repositories: %+v, want private/app alone without counts", plain.Repositories)
	}
	n.OK("describe-repositories", admin.DescribeRepositoriesRequest{IncludeCached: true}, &all)
	got := map[string]string{}
	for _, r := range all.Repositories {
		if r.ImageCount == nil {
			t.Fatalf("%s without imageCount", r.RepositoryName)
		}
		got[r.RepositoryName] = r.SourceUpstream + " " + strconv.Itoa(*r.ImageCount)
	}
	if want := map[string]string{"private/app": " 1", "docker-hub/library/alpine": "docker-hub 2"}; !maps.Equal(got, want) {
		t.Errorf("includeCached: %v, want %v", got, want)
	}
}

// TestHostGuard: a page of the loopback admin listener refuses a request
// naming a host that is not loopback (DNS rebinding), as the API does.
func TestHostGuard(t *testing.T) {
	srv := httptest.NewServer(admin.HostGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	for host, want := range map[string]int{"evil.example": http.StatusForbidden, "localhost": http.StatusOK, "": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
