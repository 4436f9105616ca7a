package admin

import (
	"time"

	"berth/reclaim"
)

// The wire types of the API. Field names are ECR's where ECR has the
// field; Berth's additions are marked.

// Repository is a local repository.
type Repository struct {
	RepositoryName                     string            `json:"repositoryName"`
	CreatedAt                          time.Time         `json:"createdAt"`
	ImageTagMutability                 string            `json:"imageTagMutability"`
	ImageTagMutabilityExclusionFilters []ExclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
	// SourceUpstream (Berth) is the upstream rule of a cached repository,
	// listed with includeCached.
	SourceUpstream string `json:"sourceUpstream,omitempty"`
	// ImageCount (Berth) is how many images it holds, given with
	// includeCached.
	ImageCount *int `json:"imageCount,omitempty"`
}

// ExclusionFilter is a tag pattern that stays mutable under
// IMMUTABLE_WITH_EXCLUSION; filterType is WILDCARD.
type ExclusionFilter struct {
	FilterType string `json:"filterType"`
	Filter     string `json:"filter"`
}

// FilterWildcard is the only exclusion filter type.
const FilterWildcard = "WILDCARD"

// CreateRepositoryRequest is create-repository's request.
type CreateRepositoryRequest struct {
	RepositoryName string `json:"repositoryName"`
	// ImageTagMutability defaults to MUTABLE.
	ImageTagMutability                 string            `json:"imageTagMutability,omitempty"`
	ImageTagMutabilityExclusionFilters []ExclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
}

// RepositoryResponse answers create-repository and delete-repository.
type RepositoryResponse struct {
	Repository Repository `json:"repository"`
}

// DescribeRepositoriesRequest is describe-repositories' request; without
// names every local repository is described.
type DescribeRepositoriesRequest struct {
	RepositoryNames []string `json:"repositoryNames,omitempty"`
	// IncludeCached (Berth), without names, lists the cached repositories
	// too (with their upstream) and every repository's image count.
	IncludeCached bool `json:"includeCached,omitempty"`
	// MaxResults and NextToken page the listing as ECR does (see
	// paging.go); without either, the first 100 repositories are listed (ECR's page),
	// with a NextToken when there are more.
	MaxResults *int   `json:"maxResults,omitempty"`
	NextToken  string `json:"nextToken,omitempty"`
}

// DescribeRepositoriesResponse answers describe-repositories.
type DescribeRepositoriesResponse struct {
	Repositories []Repository `json:"repositories"`
	// NextToken asks for the next page; empty on the last one.
	NextToken string `json:"nextToken,omitempty"`
}

// DeleteRepositoryRequest is delete-repository's request.
type DeleteRepositoryRequest struct {
	RepositoryName string `json:"repositoryName"`
	// Force deletes the repository's images too.
	Force bool `json:"force,omitempty"`
}

// PutImageTagMutabilityRequest is put-image-tag-mutability's request; its
// answer has the same fields.
type PutImageTagMutabilityRequest struct {
	RepositoryName                     string            `json:"repositoryName"`
	ImageTagMutability                 string            `json:"imageTagMutability"`
	ImageTagMutabilityExclusionFilters []ExclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
}

// ImageID names an image by digest, tag or both.
type ImageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

// ListImagesFilter selects images by whether they are tagged.
type ListImagesFilter struct {
	// TagStatus is TAGGED, UNTAGGED or ANY (the default).
	TagStatus string `json:"tagStatus,omitempty"`
}

// ListImagesRequest is list-images' request.
type ListImagesRequest struct {
	RepositoryName string            `json:"repositoryName"`
	Filter         *ListImagesFilter `json:"filter,omitempty"`
	// MaxResults and NextToken page the listing as ECR does (see
	// paging.go); without either, every image is listed at once.
	MaxResults *int   `json:"maxResults,omitempty"`
	NextToken  string `json:"nextToken,omitempty"`
}

// ListImagesResponse answers list-images: one entry per tag, and one with
// the digest alone per untagged image, newest push first.
type ListImagesResponse struct {
	ImageIDs []ImageID `json:"imageIds"`
	// NextToken asks for the next page; empty on the last one.
	NextToken string `json:"nextToken,omitempty"`
}

// DescribeImagesRequest is describe-images' request.
type DescribeImagesRequest struct {
	RepositoryName string            `json:"repositoryName"`
	ImageIDs       []ImageID         `json:"imageIds,omitempty"`
	Filter         *ListImagesFilter `json:"filter,omitempty"`
}

// ImageDetail describes one image.
type ImageDetail struct {
	RepositoryName string   `json:"repositoryName"`
	ImageDigest    string   `json:"imageDigest"`
	ImageTags      []string `json:"imageTags,omitempty"`
	// ImageSizeInBytes sums the config and layer sizes of the manifest
	// (of an index: of its children stored here).
	ImageSizeInBytes int64 `json:"imageSizeInBytes"`
	// ImagePushedAt is when a local image was pushed, or a cached one was
	// first stored.
	ImagePushedAt          *time.Time `json:"imagePushedAt,omitempty"`
	LastRecordedPullTime   *time.Time `json:"lastRecordedPullTime,omitempty"`
	ImageManifestMediaType string     `json:"imageManifestMediaType,omitempty"`
	ArtifactMediaType      string     `json:"artifactMediaType,omitempty"`
	// SourceUpstream (Berth) is the upstream rule a cached image came
	// from; empty for a local image.
	SourceUpstream string `json:"sourceUpstream,omitempty"`
	// Pinned (Berth): a cached image never evicted (cache.pinned or
	// pin-image).
	Pinned bool `json:"pinned,omitempty"`
	// TagValidations (Berth), for a cached image: when the upstream last
	// confirmed each of its tags, and under which of the rule's freshness
	// policies ("tagPolicies[0]", "ttl").
	TagValidations []TagValidation `json:"tagValidations,omitempty"`
	// ImageScanStatus is the image's latest scan (absent when it was
	// never scanned, or the node does not scan).
	ImageScanStatus *ImageScanStatus `json:"imageScanStatus,omitempty"`
	// ImageScanFindingsSummary is the findings' counts of a COMPLETE scan.
	ImageScanFindingsSummary *ImageScanFindingsSummary `json:"imageScanFindingsSummary,omitempty"`
}

// TagValidation is when a cached tag was last confirmed by its upstream.
type TagValidation struct {
	ImageTag        string     `json:"imageTag"`
	LastValidatedAt *time.Time `json:"lastValidatedAt,omitempty"`
	// Policy is empty for tags recorded by older versions.
	Policy string `json:"policy,omitempty"`
}

// DescribeImagesResponse answers describe-images.
type DescribeImagesResponse struct {
	ImageDetails []ImageDetail `json:"imageDetails"`
}

// BatchDeleteImageRequest is batch-delete-image's request.
type BatchDeleteImageRequest struct {
	RepositoryName string    `json:"repositoryName"`
	ImageIDs       []ImageID `json:"imageIds"`
}

// ImageFailure is an image batch-delete-image could not delete.
type ImageFailure struct {
	ImageID       ImageID `json:"imageId"`
	FailureCode   string  `json:"failureCode"`
	FailureReason string  `json:"failureReason"`
}

// Failure codes of batch-delete-image, as ECR's.
const (
	FailureInvalidImageDigest   = "InvalidImageDigest"
	FailureInvalidImageTag      = "InvalidImageTag"
	FailureImageNotFound        = "ImageNotFound"
	FailureImageTagMismatch     = "ImageTagDoesNotMatchDigest"
	FailureMissingDigestAndTag  = "MissingDigestAndTag"
	FailureImageReferencedByIdx = "ImageReferencedByManifestList"
)

// BatchDeleteImageResponse answers batch-delete-image.
type BatchDeleteImageResponse struct {
	ImageIDs []ImageID      `json:"imageIds"`
	Failures []ImageFailure `json:"failures"`
}

// PutLifecyclePolicyRequest is put-lifecycle-policy's request. The name may
// be a pattern ("private/*").
type PutLifecyclePolicyRequest struct {
	RepositoryName      string `json:"repositoryName"`
	LifecyclePolicyText string `json:"lifecyclePolicyText"`
}

// RepositoryNameRequest is the request of the operations that take only a
// repository name (or pattern).
type RepositoryNameRequest struct {
	RepositoryName string `json:"repositoryName"`
}

// LifecyclePolicy answers put-, get- and delete-lifecycle-policy.
type LifecyclePolicy struct {
	RepositoryName      string     `json:"repositoryName"`
	LifecyclePolicyText string     `json:"lifecyclePolicyText"`
	LastEvaluatedAt     *time.Time `json:"lastEvaluatedAt,omitempty"`
	// PolicyScope (Berth) is the repository name or pattern the policy is
	// set on: for get-lifecycle-policy of a repository that a pattern
	// covers, the pattern.
	PolicyScope string     `json:"policyScope"`
	UpdatedAt   *time.Time `json:"updatedAt,omitempty"`
}

// DescribeLifecyclePoliciesResponse (Berth) lists every stored policy.
type DescribeLifecyclePoliciesResponse struct {
	LifecyclePolicies []LifecyclePolicy `json:"lifecyclePolicies"`
}

// StartLifecyclePolicyPreviewRequest is start-lifecycle-policy-preview's
// request. Without a policy text the stored one is previewed.
type StartLifecyclePolicyPreviewRequest struct {
	RepositoryName      string `json:"repositoryName"`
	LifecyclePolicyText string `json:"lifecyclePolicyText,omitempty"`
}

// Preview statuses, as ECR's.
const (
	PreviewInProgress = "IN_PROGRESS"
	PreviewComplete   = "COMPLETE"
	PreviewFailed     = "FAILED"
)

// LifecyclePolicyPreview answers start- and get-lifecycle-policy-preview.
type LifecyclePolicyPreview struct {
	RepositoryName      string          `json:"repositoryName"`
	LifecyclePolicyText string          `json:"lifecyclePolicyText"`
	Status              string          `json:"status"`
	PreviewResults      []PreviewResult `json:"previewResults,omitempty"`
	Summary             *PreviewSummary `json:"summary,omitempty"`
	// Progress (Berth) counts the repositories evaluated so far.
	Progress *PreviewProgress `json:"progress,omitempty"`
	// FailureReason (Berth) says why a preview FAILED.
	FailureReason string `json:"failureReason,omitempty"`
}

// PreviewResult is one image a policy would expire.
type PreviewResult struct {
	// RepositoryName (Berth): a pattern's preview covers several.
	RepositoryName      string        `json:"repositoryName"`
	ImageDigest         string        `json:"imageDigest"`
	ImageTags           []string      `json:"imageTags,omitempty"`
	ImagePushedAt       *time.Time    `json:"imagePushedAt,omitempty"`
	Action              PreviewAction `json:"action"`
	AppliedRulePriority int           `json:"appliedRulePriority"`
	// ImageSizeInBytes and Reason are Berth's.
	ImageSizeInBytes int64  `json:"imageSizeInBytes"`
	Reason           string `json:"reason,omitempty"`
}

// PreviewAction is what happens to an image; always EXPIRE.
type PreviewAction struct {
	Type string `json:"type"`
}

// PreviewSummary totals a preview.
type PreviewSummary struct {
	ExpiringImageTotalCount int `json:"expiringImageTotalCount"`
	// ExpiringImageTotalBytes (Berth) is an upper bound on the bytes
	// reclaimed: images share layers.
	ExpiringImageTotalBytes int64         `json:"expiringImageTotalBytes"`
	Rules                   []RuleSummary `json:"rules,omitempty"`
}

// RuleSummary (Berth) totals what one rule expires.
type RuleSummary struct {
	RulePriority            int    `json:"rulePriority"`
	Description             string `json:"description,omitempty"`
	ExpiringImageCount      int    `json:"expiringImageCount"`
	ExpiringImageTotalBytes int64  `json:"expiringImageTotalBytes"`
}

// PreviewProgress (Berth) is how far a preview got.
type PreviewProgress struct {
	RepositoriesTotal int `json:"repositoriesTotal"`
	RepositoriesDone  int `json:"repositoriesDone"`
	ImagesEvaluated   int `json:"imagesEvaluated"`
}

// RunLifecycleRequest (Berth) is run-lifecycle's request: evaluate the
// policies now, optionally only for the repositories a name or pattern
// matches.
type RunLifecycleRequest struct {
	RepositoryName string `json:"repositoryName,omitempty"`
}

// LifecycleRun reports one evaluation of the lifecycle policies.
type LifecycleRun struct {
	StartedAt             time.Time            `json:"startedAt"`
	DurationSeconds       float64              `json:"durationSeconds"`
	RepositoriesEvaluated int                  `json:"repositoriesEvaluated"`
	ImagesEvaluated       int                  `json:"imagesEvaluated"`
	ExpiredImages         []PreviewResult      `json:"expiredImages"`
	Expired               reclaim.ExpireReport `json:"expired"`
	// GC is the garbage collection run after local images expired.
	GC     *reclaim.GCReport `json:"gc,omitempty"`
	Errors []string          `json:"errors,omitempty"`
}

// PullThroughCacheRule is an upstream rule.
type PullThroughCacheRule struct {
	// EcrRepositoryPrefix is the rule's prefix: names under it are
	// pulled through this upstream.
	EcrRepositoryPrefix string `json:"ecrRepositoryPrefix"`
	UpstreamRegistryURL string `json:"upstreamRegistryUrl"`
	// UpstreamRegistry is the registry host containerd's ?ns= names.
	UpstreamRegistry string     `json:"upstreamRegistry,omitempty"`
	CreatedAt        *time.Time `json:"createdAt,omitempty"`
	// Name, Default, TTL, Source and Active are Berth's. Source is
	// "config" or "api"; Active says whether the running router has it
	// (a rule created through the API is applied on the next start).
	Name    string `json:"name"`
	Default bool   `json:"default,omitempty"`
	TTL     string `json:"ttl,omitempty"`
	Source  string `json:"source"`
	Active  bool   `json:"active"`
	// UpstreamRegistryURLs are the rule's endpoints in order of
	// preference, when it has more than one; Endpoints is their health
	// in the running node (an active rule only).
	UpstreamRegistryURLs []string         `json:"upstreamRegistryUrls,omitempty"`
	Endpoints            []EndpointHealth `json:"endpoints,omitempty"`
}

// EndpointHealth is the health of one of a rule's endpoints.
type EndpointHealth struct {
	URL string `json:"url"`
	// Healthy is false while the endpoint is set aside after connection
	// failures or 5xx answers: the rule's other endpoints are tried first
	// until SetAsideUntil.
	Healthy       bool       `json:"healthy"`
	SetAsideUntil *time.Time `json:"setAsideUntil,omitempty"`
	// ConsecutiveFailures counts connection failures and 5xx answers since
	// the last good answer; LastError is the last of them.
	ConsecutiveFailures int        `json:"consecutiveFailures,omitempty"`
	LastError           string     `json:"lastError,omitempty"`
	LastFailureAt       *time.Time `json:"lastFailureAt,omitempty"`
	LastSuccessAt       *time.Time `json:"lastSuccessAt,omitempty"`
	// BackoffUntil is set while the endpoint backs off after a 429 or a
	// quota reported spent.
	BackoffUntil *time.Time `json:"backoffUntil,omitempty"`
	// Requests is how many HTTP requests the node sent it since it started.
	Requests int64 `json:"requests"`
}

// DescribePullThroughCacheRulesRequest filters by prefix.
type DescribePullThroughCacheRulesRequest struct {
	EcrRepositoryPrefixes []string `json:"ecrRepositoryPrefixes,omitempty"`
}

// DescribePullThroughCacheRulesResponse answers
// describe-pull-through-cache-rules.
type DescribePullThroughCacheRulesResponse struct {
	PullThroughCacheRules []PullThroughCacheRule `json:"pullThroughCacheRules"`
}

// CreatePullThroughCacheRuleRequest is create-pull-through-cache-rule's
// request.
type CreatePullThroughCacheRuleRequest struct {
	EcrRepositoryPrefix string `json:"ecrRepositoryPrefix"`
	// UpstreamRegistryURL is https://host (a bare host means https).
	UpstreamRegistryURL string `json:"upstreamRegistryUrl"`
	// UpstreamRegistry defaults to the URL's host.
	UpstreamRegistry string `json:"upstreamRegistry,omitempty"`
	// Name (Berth) defaults to the prefix.
	Name    string `json:"name,omitempty"`
	Default bool   `json:"default,omitempty"`
	// TTL (Berth) is a duration such as "24h".
	TTL string `json:"ttl,omitempty"`
	// There are no credentials: a rule that needs them belongs in the
	// config file (a path given here would let whoever reaches the API
	// send any file the node can read to an upstream of their choice).
}

// DeletePullThroughCacheRuleRequest is delete-pull-through-cache-rule's
// request.
type DeletePullThroughCacheRuleRequest struct {
	EcrRepositoryPrefix string `json:"ecrRepositoryPrefix"`
}

// PullThroughCacheRuleResponse answers create- and
// delete-pull-through-cache-rule.
type PullThroughCacheRuleResponse struct {
	PullThroughCacheRule
	// Note says when the change takes effect.
	Note string `json:"note,omitempty"`
}

// DescribeCacheRequest takes nothing.
type DescribeCacheRequest struct{}

// DescribeCacheResponse (Berth) describes the store and the cache.
type DescribeCacheResponse struct {
	Store StoreStats `json:"store"`
	// Requests is absent when the node gives no counters.
	Requests  *RequestStats  `json:"requests,omitempty"`
	Evictions *EvictionStats `json:"evictions,omitempty"`
	// Local and Upstreams count repositories and images as a background
	// pass over the store last found them, at CountsAsOf (a request never
	// walks the store); before the first pass finished they are 0 and
	// CountsAsOf is absent.
	Local      RepositoryStats `json:"local"`
	Upstreams  []UpstreamStats `json:"upstreams"`
	CountsAsOf *time.Time      `json:"countsAsOf,omitempty"`
}

// StoreStats are the store's committed blobs.
type StoreStats struct {
	Bytes int64 `json:"bytes"`
	Blobs int64 `json:"blobs"`
}

// RequestStats are the cache's lookups since the node started.
type RequestStats struct {
	Hits        int64 `json:"hits"`
	Misses      int64 `json:"misses"`
	Revalidated int64 `json:"revalidated"`
	Stale       int64 `json:"stale"`
	// HitRatio is the share of lookups served from the store (hits,
	// revalidated and stale); 0 without lookups.
	HitRatio float64 `json:"hitRatio"`
}

// EvictionStats count what capacity eviction removed since the start.
type EvictionStats struct {
	Blobs int64 `json:"blobs"`
}

// RepositoryStats count repositories and their images.
type RepositoryStats struct {
	Repositories int `json:"repositories"`
	Images       int `json:"images"`
}

// UpstreamStats count what is cached from one upstream.
type UpstreamStats struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
	RepositoryStats
}

// StartGCRequest is start-gc's request.
type StartGCRequest struct {
	// GracePeriod keeps unreferenced blobs younger than this (a duration
	// such as "1h"); the node's local.gcGrace by default.
	GracePeriod string `json:"gracePeriod,omitempty"`
}

// StartGCResponse answers start-gc.
type StartGCResponse struct {
	reclaim.GCReport
	DurationSeconds float64 `json:"durationSeconds"`
}
