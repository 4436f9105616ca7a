package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"berth/reclaim"
	"berth/registry"
	"berth/scan"
	"berth/store"
)

// Scanner is the node's image scanner (*scan.Scanner).
type Scanner interface {
	PutConfiguration(ctx context.Context, name string, c scan.RepoConfig) error
	Configuration(ctx context.Context, name string) (scan.RepoConfig, error)
	StartScan(ctx context.Context, repo store.RepoKey, digest string) error
	Findings(ctx context.Context, repo store.RepoKey, digest string) (*scan.Record, error)
	Summary(ctx context.Context, repo store.RepoKey, digest string) (scan.Summary, bool, error)
}

var _ Scanner = (*scan.Scanner)(nil)

// ECR's exceptions of the scanning operations.
const (
	CodeScanNotFound  = "ScanNotFoundException"
	CodeLimitExceeded = "LimitExceededException"
)

// ImageScanningConfiguration is ECR's.
type ImageScanningConfiguration struct {
	ScanOnPush bool `json:"scanOnPush"`
}

// PutImageScanningConfigurationRequest is ECR's request.
type PutImageScanningConfigurationRequest struct {
	RepositoryName             string                     `json:"repositoryName"`
	ImageScanningConfiguration ImageScanningConfiguration `json:"imageScanningConfiguration"`
}

// PutImageScanningConfigurationResponse is ECR's answer.
type PutImageScanningConfigurationResponse struct {
	RepositoryName             string                     `json:"repositoryName"`
	ImageScanningConfiguration ImageScanningConfiguration `json:"imageScanningConfiguration"`
}

func (s *Service) putImageScanningConfiguration(ctx context.Context, req *PutImageScanningConfigurationRequest) (*PutImageScanningConfigurationResponse, error) {
	sc, err := s.scanner()
	if err != nil {
		return nil, err
	}
	ir, err := s.target("repositoryName", req.RepositoryName)
	if err != nil {
		return nil, err
	}
	if ir.Key.Cached() {
		return nil, invalidf("repositoryName", "%s is a cached repository: nothing is pushed to it; scan its pulls with scanning.scanOnPull in the config", ir.Name)
	}
	if _, err := s.o.Repos.Repository(ctx, ir.Name); err != nil {
		return nil, err
	}
	c := scan.RepoConfig{ScanOnPush: req.ImageScanningConfiguration.ScanOnPush}
	if err := sc.PutConfiguration(ctx, ir.Name, c); err != nil {
		return nil, err
	}
	return &PutImageScanningConfigurationResponse{RepositoryName: ir.Name, ImageScanningConfiguration: req.ImageScanningConfiguration}, nil
}

// ImageScanStatus is ECR's.
type ImageScanStatus struct {
	Status      string `json:"status"`
	Description string `json:"description,omitempty"`
}

// StartImageScanRequest is ECR's request.
type StartImageScanRequest struct {
	RepositoryName string  `json:"repositoryName"`
	ImageID        ImageID `json:"imageId"`
}

// StartImageScanResponse is ECR's answer.
type StartImageScanResponse struct {
	RepositoryName  string          `json:"repositoryName"`
	ImageID         ImageID         `json:"imageId"`
	ImageScanStatus ImageScanStatus `json:"imageScanStatus"`
}

func (s *Service) startImageScan(ctx context.Context, req *StartImageScanRequest) (*StartImageScanResponse, error) {
	sc, err := s.scanner()
	if err != nil {
		return nil, err
	}
	ir, id, err := s.scanTarget(ctx, req.RepositoryName, req.ImageID)
	if err != nil {
		return nil, err
	}
	err = sc.StartScan(ctx, ir.Key, id.ImageDigest)
	if errors.Is(err, scan.ErrQueueFull) {
		return nil, &Error{Status: http.StatusTooManyRequests, Code: CodeLimitExceeded, Message: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	return &StartImageScanResponse{RepositoryName: ir.Name, ImageID: id,
		ImageScanStatus: ImageScanStatus{Status: scan.StatusInProgress, Description: "The scan is queued."}}, nil
}

// scanTarget resolves a repository and an image id to a digest the
// repository holds.
func (s *Service) scanTarget(ctx context.Context, name string, id ImageID) (ir reclaim.ImageRepo, _ ImageID, err error) {
	if ir, err = s.target("repositoryName", name); err != nil {
		return ir, id, err
	}
	if id.ImageDigest == "" && id.ImageTag == "" {
		return ir, id, invalidf("imageId", "give imageDigest or imageTag")
	}
	if id.ImageDigest == "" {
		t, err := s.o.Scan.Tags.GetTag(ctx, ir.Key.Upstream, ir.Key.Name, id.ImageTag)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ir, id, notFound(CodeImageNotFound, "the image with tag %s is not in %s", id.ImageTag, ir.Name)
			}
			return ir, id, err
		}
		id.ImageDigest = t.Digest
	}
	if _, err := registry.ParseDigest(id.ImageDigest); err != nil {
		return ir, id, invalidf("imageId.imageDigest", "%q is not a digest", id.ImageDigest)
	}
	return ir, id, nil
}

// DescribeImageScanFindingsRequest is ECR's request.
type DescribeImageScanFindingsRequest struct {
	RepositoryName string  `json:"repositoryName"`
	ImageID        ImageID `json:"imageId"`
	MaxResults     int     `json:"maxResults,omitempty"`
	NextToken      string  `json:"nextToken,omitempty"`
}

// ImageScanFindings is ECR's.
type ImageScanFindings struct {
	ImageScanCompletedAt         *time.Time     `json:"imageScanCompletedAt,omitempty"`
	VulnerabilitySourceUpdatedAt *time.Time     `json:"vulnerabilitySourceUpdatedAt,omitempty"`
	FindingSeverityCounts        map[string]int `json:"findingSeverityCounts"`
	Findings                     []scan.Finding `json:"findings"`
}

// ImageScanFindingsSummary is ECR's, in describe-images.
type ImageScanFindingsSummary struct {
	ImageScanCompletedAt         *time.Time     `json:"imageScanCompletedAt,omitempty"`
	VulnerabilitySourceUpdatedAt *time.Time     `json:"vulnerabilitySourceUpdatedAt,omitempty"`
	FindingSeverityCounts        map[string]int `json:"findingSeverityCounts"`
}

// scanSummary fills an image detail's scan status and findings' counts
// from its scan record; a node that does not scan leaves them out.
func (s *Service) scanSummary(ctx context.Context, ir reclaim.ImageRepo, d *ImageDetail) error {
	if s.o.Scan.Scanner == nil {
		return nil
	}
	sum, ok, err := s.o.Scan.Scanner.Summary(ctx, ir.Key, d.ImageDigest)
	if err != nil || !ok {
		return err
	}
	d.ImageScanStatus = &ImageScanStatus{Status: sum.Status, Description: sum.Description}
	if sum.Status == scan.StatusComplete {
		d.ImageScanFindingsSummary = &ImageScanFindingsSummary{ImageScanCompletedAt: timePtr(sum.CompletedAt),
			VulnerabilitySourceUpdatedAt: timePtr(sum.DBUpdatedAt), FindingSeverityCounts: sum.Counts}
	}
	return nil
}

// DescribeImageScanFindingsResponse is ECR's answer.
type DescribeImageScanFindingsResponse struct {
	RepositoryName    string             `json:"repositoryName"`
	ImageID           ImageID            `json:"imageId"`
	ImageScanStatus   ImageScanStatus    `json:"imageScanStatus"`
	ImageScanFindings *ImageScanFindings `json:"imageScanFindings,omitempty"`
	// SBOMDigest (Berth) is the digest of the image's SBOM document.
	SBOMDigest string `json:"sbomDigest,omitempty"`
	NextToken  string `json:"nextToken,omitempty"`
}

func (s *Service) describeImageScanFindings(ctx context.Context, req *DescribeImageScanFindingsRequest) (*DescribeImageScanFindingsResponse, error) {
	sc, err := s.scanner()
	if err != nil {
		return nil, err
	}
	if req.MaxResults < 0 || req.MaxResults > 1000 {
		return nil, invalidf("maxResults", "must be between 1 and 1000")
	}
	ir, id, err := s.scanTarget(ctx, req.RepositoryName, req.ImageID)
	if err != nil {
		return nil, err
	}
	r, err := sc.Findings(ctx, ir.Key, id.ImageDigest)
	if errors.Is(err, scan.ErrNotScanned) {
		return nil, notFound(CodeScanNotFound, "%s@%s: %s", ir.Name, id.ImageDigest, err.Error())
	}
	if err != nil {
		return nil, err
	}
	resp := &DescribeImageScanFindingsResponse{RepositoryName: ir.Name, ImageID: id,
		ImageScanStatus: ImageScanStatus{Status: r.Status, Description: r.Description}, SBOMDigest: r.SBOM}
	if r.Status != scan.StatusComplete {
		return resp, nil
	}
	start, err := pageStart(req.NextToken, len(r.Findings))
	if err != nil {
		return nil, err
	}
	n := req.MaxResults
	if n == 0 {
		n = 100
	}
	end := min(start+n, len(r.Findings))
	if end < len(r.Findings) {
		resp.NextToken = strconv.Itoa(end)
	}
	findings := r.Findings[start:end]
	if findings == nil {
		findings = []scan.Finding{}
	}
	completed, updated := r.CompletedAt, r.DBUpdatedAt
	resp.ImageScanFindings = &ImageScanFindings{ImageScanCompletedAt: &completed, VulnerabilitySourceUpdatedAt: &updated,
		FindingSeverityCounts: r.Counts(), Findings: findings}
	return resp, nil
}

func pageStart(token string, n int) (int, error) {
	if token == "" {
		return 0, nil
	}
	i, err := strconv.Atoi(token)
	if err != nil || i < 0 || i > n {
		return 0, invalidf("nextToken", "%q is not a token this operation gave", token)
	}
	return i, nil
}

func (s *Service) scanner() (Scanner, error) {
	if s.o.Scan.Scanner == nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeServer, Message: "this node does not scan images"}
	}
	return s.o.Scan.Scanner, nil
}

// ScanOptions are what the scanning operations run over.
type ScanOptions struct {
	Scanner Scanner
	// Tags resolves an imageTag (*store.Store).
	Tags interface {
		GetTag(ctx context.Context, ns, repo, tag string) (store.Tag, error)
	}
}
