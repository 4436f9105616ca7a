package admin_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/admin"
	"berth/admin/admintest"
	"berth/store"
)

func TestImages(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	a := admintest.NewImage("a", 2)
	b := admintest.NewImage("b", 1)
	u := admintest.NewImage("u", 1)
	arm, amd := admintest.NewImage("arm", 1), admintest.NewImage("amd", 1)
	idx := admintest.NewIndex(arm, amd)
	n.Push("private/app", t0.Add(-3*day), a, "v1", "latest")
	n.Push("private/app", t0.Add(-2*day), b, "v2")
	n.Push("private/app", t0.Add(-1*day), u)
	n.Push("private/app", t0, idx, "multi")
	n.Pulled(store.LocalKey("private/app"), a.Digest, t0.Add(-time.Hour))

	var li admin.ListImagesResponse
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "private/app"}, &li)
	want := []admin.ImageID{
		{ImageDigest: idx.Digest, ImageTag: "multi"},
		{ImageDigest: amd.Digest}, {ImageDigest: arm.Digest}, // pushed with the index: by digest
		{ImageDigest: u.Digest},
		{ImageDigest: b.Digest, ImageTag: "v2"},
		{ImageDigest: a.Digest, ImageTag: "latest"}, {ImageDigest: a.Digest, ImageTag: "v1"},
	}
	slices.SortFunc(want[:3], func(x, y admin.ImageID) int { return strings.Compare(x.ImageDigest, y.ImageDigest) })
	if !slices.Equal(li.ImageIDs, want) {
		t.Fatalf("list-images\n got %+v\nwant %+v", li.ImageIDs, want)
	}
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "private/app", Filter: &admin.ListImagesFilter{TagStatus: "TAGGED"}}, &li)
	if len(li.ImageIDs) != 4 {
		t.Fatalf("tagged: %+v", li.ImageIDs)
	}
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "private/app", Filter: &admin.ListImagesFilter{TagStatus: "UNTAGGED"}}, &li)
	if len(li.ImageIDs) != 3 {
		t.Fatalf("untagged: %+v", li.ImageIDs)
	}
	if e := wantErr(t, n, "list-images", admin.ListImagesRequest{RepositoryName: "private/app", Filter: &admin.ListImagesFilter{TagStatus: "SOME"}}, 400, admin.CodeInvalidParameter); e[0].Field != "filter.tagStatus" {
		t.Fatalf("field %q", e[0].Field)
	}
	wantErr(t, n, "list-images", admin.ListImagesRequest{RepositoryName: "private/nope"}, 404, admin.CodeRepositoryNotFound)

	var di admin.DescribeImagesResponse
	n.OK("describe-images", admin.DescribeImagesRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageTag: "v1"}, {ImageDigest: idx.Digest}}}, &di)
	if len(di.ImageDetails) != 2 {
		t.Fatalf("details %+v", di.ImageDetails)
	}
	d := di.ImageDetails[0]
	if d.ImageDigest != a.Digest || !slices.Equal(d.ImageTags, []string{"latest", "v1"}) || d.ImageSizeInBytes != a.Size ||
		d.ImagePushedAt == nil || !d.ImagePushedAt.Equal(t0.Add(-3*day)) || d.LastRecordedPullTime == nil || !d.LastRecordedPullTime.Equal(t0.Add(-time.Hour)) ||
		d.RepositoryName != "private/app" || d.SourceUpstream != "" || d.ImageManifestMediaType != admintest.MediaManifest || d.ArtifactMediaType != admintest.MediaConfig {
		t.Fatalf("detail of a %+v (size want %d)", d, a.Size)
	}
	if d := di.ImageDetails[1]; d.ImageSizeInBytes != arm.Size+amd.Size || d.LastRecordedPullTime != nil || d.ImageManifestMediaType != admintest.MediaIndex {
		t.Fatalf("detail of the index %+v (size want %d)", d, arm.Size+amd.Size)
	}
	n.OK("describe-images", admin.DescribeImagesRequest{RepositoryName: "private/app"}, &di)
	if len(di.ImageDetails) != 6 {
		t.Fatalf("all details: %d", len(di.ImageDetails))
	}
	wantErr(t, n, "describe-images", admin.DescribeImagesRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageTag: "v9"}}}, 404, admin.CodeImageNotFound)
	wantErr(t, n, "describe-images", admin.DescribeImagesRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageTag: "v1", ImageDigest: b.Digest}}}, 400, admin.CodeInvalidParameter)

	// Cached repositories, by the names clients pull them by.
	c := admintest.NewImage("alpine", 1)
	n.Cache("docker-hub", "library/alpine", t0.Add(-5*day), c, "3.20")
	// The proxy records when and under which policy the upstream last
	// confirmed a tag; describe-images shows it.
	if err := n.Store.PutTag(t.Context(), "docker-hub", "library/alpine", "3.20", store.Tag{Digest: c.Digest, FetchedAt: t0, Policy: "tagPolicies[1]"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"docker-hub/library/alpine", "alpine", "library/alpine"} {
		n.OK("describe-images", admin.DescribeImagesRequest{RepositoryName: name}, &di)
		if len(di.ImageDetails) != 1 {
			t.Fatalf("%s: %+v", name, di.ImageDetails)
		}
		d := di.ImageDetails[0]
		if d.RepositoryName != "docker-hub/library/alpine" || d.SourceUpstream != "docker-hub" || d.ImageDigest != c.Digest ||
			!slices.Equal(d.ImageTags, []string{"3.20"}) || d.ImageSizeInBytes != c.Size || !d.ImagePushedAt.Equal(t0.Add(-5*day)) ||
			len(d.TagValidations) != 1 || d.TagValidations[0].ImageTag != "3.20" || !d.TagValidations[0].LastValidatedAt.Equal(t0) ||
			d.TagValidations[0].Policy != "tagPolicies[1]" {
			t.Fatalf("%s: detail %+v", name, d)
		}
	}
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "docker-hub/library/alpine"}, &li)
	if !slices.Equal(li.ImageIDs, []admin.ImageID{{ImageDigest: c.Digest, ImageTag: "3.20"}}) {
		t.Fatalf("cached list-images %+v", li.ImageIDs)
	}
	wantErr(t, n, "describe-images", admin.DescribeImagesRequest{RepositoryName: "quay/nothing/here"}, 404, admin.CodeRepositoryNotFound)
}

func TestBatchDeleteImage(t *testing.T) {
	n := admintest.New(t)
	t0 := admintest.Epoch
	a := admintest.NewImage("a", 1)
	b := admintest.NewImage("b", 1)
	u := admintest.NewImage("u", 1)
	arm := admintest.NewImage("arm", 1)
	idx := admintest.NewIndex(arm)
	n.Push("private/app", t0, a, "v1", "latest")
	n.Push("private/app", t0, b, "v2")
	n.Push("private/app", t0, u)
	n.Push("private/app", t0, idx, "multi")

	var resp admin.BatchDeleteImageResponse
	n.OK("batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{
		{ImageTag: "latest"},                       // untags a, which keeps v1
		{ImageTag: "v2"},                           // b's last tag: b goes
		{ImageDigest: u.Digest},                    // untagged image by digest
		{ImageDigest: arm.Digest},                  // listed by the index: refused
		{ImageTag: "nope"},                         // unknown tag
		{ImageDigest: a.Digest, ImageTag: "multi"}, // tag of another image
		{ImageDigest: "sha256:zz"},                 // invalid
		{},                                         // neither
		{ImageDigest: u.Digest},                    // deleted above
	}}, &resp)
	wantIDs := []admin.ImageID{{ImageDigest: a.Digest, ImageTag: "latest"}, {ImageDigest: b.Digest, ImageTag: "v2"}, {ImageDigest: u.Digest}}
	if !slices.Equal(resp.ImageIDs, wantIDs) {
		t.Fatalf("deleted %+v\nwant %+v", resp.ImageIDs, wantIDs)
	}
	var codes []string
	for _, f := range resp.Failures {
		codes = append(codes, f.FailureCode)
		if f.FailureReason == "" {
			t.Fatalf("failure without a reason: %+v", f)
		}
	}
	wantCodes := []string{admin.FailureImageReferencedByIdx, admin.FailureImageNotFound, admin.FailureImageTagMismatch,
		admin.FailureInvalidImageDigest, admin.FailureMissingDigestAndTag, admin.FailureImageNotFound}
	if !slices.Equal(codes, wantCodes) {
		t.Fatalf("failures %v, want %v", codes, wantCodes)
	}
	var li admin.ListImagesResponse
	n.OK("list-images", admin.ListImagesRequest{RepositoryName: "private/app"}, &li)
	left := map[string]bool{}
	for _, id := range li.ImageIDs {
		left[id.ImageDigest+" "+id.ImageTag] = true
	}
	want := map[string]bool{a.Digest + " v1": true, idx.Digest + " multi": true, arm.Digest + " ": true}
	if len(left) != len(want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	for k := range want {
		if !left[k] {
			t.Fatalf("left %v, want %v", left, want)
		}
	}
	// The index by digest, then its child.
	n.OK("batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "private/app", ImageIDs: []admin.ImageID{{ImageDigest: idx.Digest}, {ImageDigest: arm.Digest}}}, &resp)
	if len(resp.ImageIDs) != 2 || len(resp.Failures) != 0 {
		t.Fatalf("index then child: %+v", resp)
	}
	wantErr(t, n, "batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "private/app"}, 400, admin.CodeInvalidParameter)

	// A cached image: its tag and record go, and the blobs it alone used.
	shared := admintest.NewImage("shared", 1)
	c1 := admintest.NewImage("c1", 2)
	c1.Blobs = append(c1.Blobs, shared.Blobs[1]) // a layer c2 has too
	c1 = reManifest(c1)
	c2 := admintest.NewImage("c2", 1)
	c2.Blobs = append(c2.Blobs, shared.Blobs[1])
	c2 = reManifest(c2)
	n.Cache("quay", "org/app", t0, c1, "one")
	n.Cache("quay", "org/app", t0, c2, "two")
	n.OK("batch-delete-image", admin.BatchDeleteImageRequest{RepositoryName: "quay/org/app", ImageIDs: []admin.ImageID{{ImageTag: "one"}}}, &resp)
	if !slices.Equal(resp.ImageIDs, []admin.ImageID{{ImageDigest: c1.Digest, ImageTag: "one"}}) {
		t.Fatalf("cached delete %+v", resp)
	}
	for _, bl := range c1.Blobs[:3] {
		if n.HasBlob(bl.Desc.Digest) {
			t.Fatalf("blob %s of the deleted cached image survived", bl.Desc.Digest)
		}
	}
	if !n.HasBlob(shared.Blobs[1].Desc.Digest) || n.HasManifest(c1.Digest) || !n.HasManifest(c2.Digest) {
		t.Fatalf("shared layer kept %v, c1 manifest gone, c2 kept", n.HasBlob(shared.Blobs[1].Desc.Digest))
	}
}

// reManifest recomputes an image's manifest after its blobs changed.
func reManifest(im admintest.Image) admintest.Image {
	var ls []admintest.Descriptor
	im.Size = im.Blobs[0].Desc.Size
	for _, b := range im.Blobs[1:] {
		ls = append(ls, b.Desc)
		im.Size += b.Desc.Size
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": im.Type, "config": im.Blobs[0].Desc, "layers": ls})
	im.Body, im.Digest = body, admintest.Digest(body)
	return im
}
