package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"berth/errdefs"
	"berth/reclaim"
	"berth/registry"
)

// images resolves a repository, local or cached, and lists its images.
func (s *Service) images(ctx context.Context, field, name string) (reclaim.ImageRepo, []reclaim.ImageInfo, error) {
	ir, err := s.target(field, name)
	if err != nil {
		return ir, nil, err
	}
	if !ir.Cached() {
		if _, err := s.o.Repos.Repository(ctx, ir.Key.Name); err != nil {
			return ir, nil, err
		}
	}
	images, err := s.o.Reclaim.Images(ctx, ir)
	if err != nil {
		return ir, nil, err
	}
	if ir.Cached() && len(images) == 0 {
		return ir, nil, notFound(CodeRepositoryNotFound, "%s is a pull-through cache of upstream %s and none of its images is cached here", name, ir.Key.Upstream)
	}
	return ir, images, nil
}

// tagFilter returns the filter's predicate.
func tagFilter(f *ListImagesFilter) (func(reclaim.ImageInfo) bool, error) {
	status := "ANY"
	if f != nil && f.TagStatus != "" {
		status = f.TagStatus
	}
	switch status {
	case "ANY":
		return func(reclaim.ImageInfo) bool { return true }, nil
	case "TAGGED":
		return func(im reclaim.ImageInfo) bool { return len(im.Tags) > 0 }, nil
	case "UNTAGGED":
		return func(im reclaim.ImageInfo) bool { return len(im.Tags) == 0 }, nil
	}
	return nil, invalidf("filter.tagStatus", "must be TAGGED, UNTAGGED or ANY, got %q", status)
}

func (s *Service) listImages(ctx context.Context, req *ListImagesRequest) (*ListImagesResponse, error) {
	keep, err := tagFilter(req.Filter)
	if err != nil {
		return nil, err
	}
	n, paged, err := pageSize(req.MaxResults, req.NextToken)
	if err != nil {
		return nil, err
	}
	_, images, err := s.images(ctx, "repositoryName", req.RepositoryName)
	if err != nil {
		return nil, err
	}
	ids, pushed := imageIDs(images, keep)
	if !paged {
		return &ListImagesResponse{ImageIDs: ids}, nil
	}
	status := ""
	if req.Filter != nil {
		status = req.Filter.TagStatus
	}
	page, next, err := imagesPage(ids, pushed, "images\x01"+req.RepositoryName+"\x01"+status, req.NextToken, n)
	if err != nil {
		return nil, err
	}
	return &ListImagesResponse{ImageIDs: page, NextToken: next}, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (s *Service) detail(ir reclaim.ImageRepo, im reclaim.ImageInfo) ImageDetail {
	d := ImageDetail{
		RepositoryName: ir.Name, ImageDigest: im.Digest, ImageTags: im.Tags, ImageSizeInBytes: im.Size,
		ImagePushedAt: timePtr(im.PushedAt), LastRecordedPullTime: timePtr(im.LastPulledAt),
		ImageManifestMediaType: im.MediaType, ArtifactMediaType: im.ArtifactType, SourceUpstream: ir.Key.Upstream,
	}
	if pinned := s.live().Pinned; ir.Cached() && pinned != nil {
		d.Pinned = pinned(ir.Key.Upstream, ir.Key.Name, im.Digest)
	}
	if ir.Cached() {
		for _, t := range im.TagRecords {
			d.TagValidations = append(d.TagValidations, TagValidation{ImageTag: t.Name, LastValidatedAt: timePtr(t.FetchedAt), Policy: t.Policy})
		}
	}
	return d
}

// find returns the image an ImageID names, or the failure code and reason.
func find(images []reclaim.ImageInfo, id ImageID) (int, string, string) {
	if id.ImageDigest == "" && id.ImageTag == "" {
		return -1, FailureMissingDigestAndTag, "give an imageDigest, an imageTag or both"
	}
	if id.ImageDigest != "" {
		if _, err := registry.ParseDigest(id.ImageDigest); err != nil {
			return -1, FailureInvalidImageDigest, fmt.Sprintf("%q is not a digest", id.ImageDigest)
		}
	}
	if id.ImageTag != "" && !registry.ValidTag(id.ImageTag) {
		return -1, FailureInvalidImageTag, fmt.Sprintf("%q is not a tag", id.ImageTag)
	}
	byTag, byDigest := -1, -1
	for i, im := range images {
		if id.ImageDigest != "" && im.Digest == id.ImageDigest {
			byDigest = i
		}
		if id.ImageTag != "" && slices.Contains(im.Tags, id.ImageTag) {
			byTag = i
		}
	}
	switch {
	case id.ImageTag != "" && byTag < 0:
		return -1, FailureImageNotFound, fmt.Sprintf("no image is tagged %s", id.ImageTag)
	case id.ImageDigest != "" && byDigest < 0:
		return -1, FailureImageNotFound, fmt.Sprintf("no image has digest %s", id.ImageDigest)
	case id.ImageTag != "" && id.ImageDigest != "" && byTag != byDigest:
		return -1, FailureImageTagMismatch, fmt.Sprintf("tag %s points at %s, not %s", id.ImageTag, images[byTag].Digest, id.ImageDigest)
	case byTag >= 0:
		return byTag, "", ""
	}
	return byDigest, "", ""
}

func (s *Service) describeImages(ctx context.Context, req *DescribeImagesRequest) (*DescribeImagesResponse, error) {
	keep, err := tagFilter(req.Filter)
	if err != nil {
		return nil, err
	}
	ir, images, err := s.images(ctx, "repositoryName", req.RepositoryName)
	if err != nil {
		return nil, err
	}
	out := &DescribeImagesResponse{ImageDetails: []ImageDetail{}}
	if len(req.ImageIDs) == 0 {
		for _, im := range images {
			if keep(im) {
				out.ImageDetails = append(out.ImageDetails, s.detail(ir, im))
			}
		}
		return out, s.scanSummaries(ctx, ir, out.ImageDetails)
	}
	seen := map[int]bool{}
	for i, id := range req.ImageIDs {
		j, code, reason := find(images, id)
		switch {
		case code == FailureImageNotFound:
			return nil, notFound(CodeImageNotFound, "imageIds[%d]: %s in %s", i, reason, req.RepositoryName)
		case code != "":
			return nil, invalidf(fmt.Sprintf("imageIds[%d]", i), "%s", reason)
		}
		if !seen[j] && keep(images[j]) {
			seen[j] = true
			out.ImageDetails = append(out.ImageDetails, s.detail(ir, images[j]))
		}
	}
	return out, s.scanSummaries(ctx, ir, out.ImageDetails)
}

// scanSummaries adds each image's latest scan (scanSummary).
func (s *Service) scanSummaries(ctx context.Context, ir reclaim.ImageRepo, details []ImageDetail) error {
	for i := range details {
		if err := s.scanSummary(ctx, ir, &details[i]); err != nil {
			return err
		}
	}
	return nil
}

// batchDeleteImage deletes images as ECR does: an imageDigest deletes the
// image with all its tags; an imageTag removes the tag, and the image with
// it when that was its last tag. An image an index of the repository lists
// is refused while the index stays.
func (s *Service) batchDeleteImage(ctx context.Context, req *BatchDeleteImageRequest) (*BatchDeleteImageResponse, error) {
	if len(req.ImageIDs) == 0 {
		return nil, invalidf("imageIds", "required")
	}
	ir, images, err := s.images(ctx, "repositoryName", req.RepositoryName)
	if err != nil {
		return nil, err
	}
	out := &BatchDeleteImageResponse{ImageIDs: []ImageID{}, Failures: []ImageFailure{}}
	gone := map[string]bool{} // digests deleted by this batch
	var refs []reclaim.ImageRef
	fail := func(id ImageID, code, reason string) {
		out.Failures = append(out.Failures, ImageFailure{ImageID: id, FailureCode: code, FailureReason: reason})
	}
	for _, id := range req.ImageIDs {
		i, code, reason := find(images, id)
		if code == "" && gone[images[i].Digest] {
			code, reason = FailureImageNotFound, "deleted earlier in this request"
		}
		if code != "" {
			fail(id, code, reason)
			continue
		}
		im := &images[i]
		if id.ImageTag != "" && len(im.Tags) > 1 {
			// Untag only: the image keeps its other tags.
			if err := s.untag(ctx, ir, id.ImageTag); err != nil {
				return nil, err
			}
			im.Tags = slices.DeleteFunc(im.Tags, func(t string) bool { return t == id.ImageTag })
			out.ImageIDs = append(out.ImageIDs, ImageID{ImageDigest: im.Digest, ImageTag: id.ImageTag})
			continue
		}
		if holder := heldBy(images, gone, im.Digest); holder != "" {
			fail(id, FailureImageReferencedByIdx, fmt.Sprintf("index %s lists this image; delete the index first", holder))
			continue
		}
		gone[im.Digest] = true
		refs = append(refs, reclaim.ImageRef{Repo: ir, Digest: im.Digest})
		if len(im.Tags) == 0 {
			out.ImageIDs = append(out.ImageIDs, ImageID{ImageDigest: im.Digest})
		}
		for _, t := range im.Tags {
			out.ImageIDs = append(out.ImageIDs, ImageID{ImageDigest: im.Digest, ImageTag: t})
		}
	}
	if len(refs) > 0 {
		_, err := s.o.Reclaim.ExpireImages(ctx, refs)
		// Images may have gone before a failure: counted again either way.
		s.storeChanged()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// heldBy returns an image of the repository, not deleted, that lists d as
// a child.
func heldBy(images []reclaim.ImageInfo, gone map[string]bool, d string) string {
	for _, im := range images {
		if !gone[im.Digest] && im.Digest != d && slices.Contains(im.Children, d) {
			return im.Digest
		}
	}
	return ""
}

// untag removes one tag of a repository.
func (s *Service) untag(ctx context.Context, ir reclaim.ImageRepo, tag string) error {
	if ir.Cached() {
		return s.o.Store.DeleteTag(ctx, ir.Key.Upstream, ir.Key.Name, tag)
	}
	err := s.o.Repos.DeleteManifest(ctx, registry.Repo{Name: ir.Key.Name}, tag)
	if isManifestUnknown(err) {
		return nil // untagged meanwhile
	}
	return err
}

func isManifestUnknown(err error) bool {
	return errors.Is(err, errdefs.ErrManifestUnknown)
}
