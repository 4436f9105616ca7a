package admin

import (
	"context"

	"berth/replicate"
)

// DescribeImageReplicationStatusRequest is ECR's request.
type DescribeImageReplicationStatusRequest struct {
	RepositoryName string  `json:"repositoryName"`
	ImageID        ImageID `json:"imageId"`
}

// DescribeImageReplicationStatusResponse is ECR's answer: the image's
// replication to each destination.
type DescribeImageReplicationStatusResponse struct {
	RepositoryName    string             `json:"repositoryName"`
	ImageID           ImageID            `json:"imageId"`
	ReplicationStatus []replicate.Status `json:"replicationStatuses"`
}

func (s *Service) describeImageReplicationStatus(ctx context.Context, req *DescribeImageReplicationStatusRequest) (*DescribeImageReplicationStatusResponse, error) {
	if req.RepositoryName == "" {
		return nil, invalidf("repositoryName", "required")
	}
	id := req.ImageID
	if id.ImageDigest == "" && id.ImageTag == "" {
		return nil, invalidf("imageId", "give imageDigest or imageTag")
	}
	resp := &DescribeImageReplicationStatusResponse{RepositoryName: req.RepositoryName, ImageID: id, ReplicationStatus: []replicate.Status{}}
	if s.o.Replication == nil {
		return resp, nil
	}
	d, st, err := s.o.Replication(ctx, req.RepositoryName, id.ImageDigest, id.ImageTag)
	if err != nil {
		return nil, err
	}
	resp.ImageID.ImageDigest = d
	if st != nil {
		resp.ReplicationStatus = st
	}
	return resp, nil
}
