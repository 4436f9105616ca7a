// Package admin is Berth's operator API: JSON over HTTP on the admin
// listener (loopback by default), modeled on the Amazon ECR API.
//
// Every operation is a POST of a JSON object to /admin/v1/<verb>, where
// <verb> is the name of the `aws ecr` command it mirrors (create-repository,
// describe-images, put-lifecycle-policy, ...), with ECR's request and
// response field names (repositoryName, imageIds, imageDetails,
// lifecyclePolicyText, ...). The request must say Content-Type:
// application/json, which a web page cannot send to another origin without
// the CORS preflight this API never grants; an empty body is an empty
// request. Answers are 200 with a JSON object; errors are
// {"errors":[{"code":…,"message":…}]} with ECR's exception names as codes
// (RepositoryNotFoundException, InvalidParameterException, ...) and the
// matching HTTP status.
//
// Repository names are the names clients pull by: a local repository's name
// ("private/app"), or a cached one's with its upstream's prefix
// ("docker-hub/library/alpine"). Lifecycle policies apply to both, set per
// repository or per pattern, where '*' matches any run of characters,
// slashes included ("private/*", "docker-hub/*", "*"). A repository's own
// policy wins over patterns; among patterns the one with the most literal
// characters, then the fewest wildcards, then the first in byte order. The
// daemon evaluates them on a schedule by calling Service.RunLifecycle.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"berth/errdefs"
	"berth/local"
	"berth/reclaim"
	"berth/registry"
	"berth/replicate"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
)

// Store is what the API reads and writes in the node's store directly.
type Store interface {
	Stats() store.Stats
	ListRepositories(ctx context.Context) ([]string, error)
	RepositoriesPage(ctx context.Context, after string, n int) ([]string, bool, error)
	ImageRepositoriesPage(ctx context.Context, after store.RepoKey, cached bool, n int) ([]store.RepoKey, bool, error)
	CountImages(ctx context.Context, repo store.RepoKey) (int, error)
	DeleteTag(ctx context.Context, ns, repo, tag string) error
	PutPolicy(ctx context.Context, kind, name string, value []byte) error
	GetPolicy(ctx context.Context, kind, name string) ([]byte, error)
	DeletePolicy(ctx context.Context, kind, name string) error
	ListPolicies(ctx context.Context, kind string) ([]store.PolicyEntry, error)
}

// Repos is what the API asks of the local repositories (*local.Repos).
type Repos interface {
	Repository(ctx context.Context, name string) (*store.Repository, error)
	CreateRepository(ctx context.Context, name, mutability string, exclusions []string) (*store.Repository, error)
	SetMutability(ctx context.Context, name, mutability string, exclusions []string) error
	DeleteManifest(ctx context.Context, repo registry.Repo, ref string) error
}

// Reclaim is what the API asks of the store's deleter (*reclaim.Reclaimer):
// the images of a repository, expiring them, repository deletes and
// garbage collection.
type Reclaim interface {
	DeleteRepository(ctx context.Context, name string, force bool) (*store.Repository, error)
	Images(ctx context.Context, ir reclaim.ImageRepo) ([]reclaim.ImageInfo, error)
	ExpireImages(ctx context.Context, refs []reclaim.ImageRef) (reclaim.ExpireReport, error)
	StoreRepositories(ctx context.Context) ([]reclaim.RepoImages, error)
	GC(ctx context.Context, grace time.Duration) (reclaim.GCReport, error)
}

// The node's types are what the API runs over.
var (
	_ Store   = (*store.Store)(nil)
	_ Repos   = (*local.Repos)(nil)
	_ Reclaim = (*reclaim.Reclaimer)(nil)
	_ Router  = (*upstream.Router)(nil)
)

// Router routes names the way the registry does (*upstream.Router).
type Router interface {
	RouteCanonical(name string) (upstream.Target, error)
	Route(ns, name string) (upstream.Target, error)
	Upstream(name string) *upstream.Upstream
	Upstreams() []*upstream.Upstream
}

// CacheCounters are the node's cache counters since it started.
type CacheCounters struct {
	// Hits were served from the store without asking an upstream.
	Hits int64
	// Misses were fetched from an upstream.
	Misses int64
	// Revalidated tags were confirmed by the upstream and served from the
	// store; Stale ones were served from the store because the upstream
	// failed.
	Revalidated int64
	Stale       int64
	// EvictedBlobs were removed to keep the store under its capacity.
	EvictedBlobs int64
}

// StatsSource gives the cache counters; PromStats reads them from the
// node's Prometheus registry.
type StatsSource interface {
	CacheCounters() CacheCounters
}

// Live is what the API reads of the node's live configuration.
type Live struct {
	// Router routes names the way the registry does; nil routes every
	// name to a local repository.
	Router Router
	// ConfigRules are the config file's upstream rules, listed by
	// describe-pull-through-cache-rules beside the ones created through
	// the API.
	ConfigRules []upstream.Rule
	// LocalPrefixes are local.prefixes, which a new rule's prefix may not
	// take.
	LocalPrefixes []string
	// Pinned, when set, reports whether a cached image is pinned (the
	// config's cache.pinned or pin-image): describe-images says so.
	Pinned func(upstream, repo, digest string) bool
	// GCGrace is the grace of start-gc (unless the request gives one) and
	// of the collection after a lifecycle run expired local images.
	GCGrace time.Duration
}

// live is the live settings of this call.
func (s *Service) live() Live {
	if s.o.Live == nil {
		return Live{}
	}
	return s.o.Live()
}

// Options configure a Service.
type Options struct {
	Store   Store
	Repos   Repos
	Reclaim Reclaim
	// Live returns the node's live settings; it is called for every
	// request, so a config reload reaches the API at once. Nil routes every
	// name to a local repository and lists no config rules.
	Live func() Live
	// Stats, when set, adds request counters to describe-cache.
	Stats StatsSource
	// OnRepositoryPolicy, when set, is told of every repository policy
	// set (text) or deleted (nil) so it takes effect at once.
	OnRepositoryPolicy func(name string, text []byte) error
	// OnRevokeTokens, when set, is told of a revocation (the user and its
	// mark) so it takes effect at once.
	OnRevokeTokens func(user, mark string)
	// RotateKey, when set (encryption at rest is on), rotates the store's
	// master key to the one in a key file on the node (rotate-key).
	RotateKey func(ctx context.Context, newKeyFile string) (store.Rotation, error)
	// OnRulesChanged, when set, is told that a pull-through cache rule
	// was created or deleted, so the node can route by it at once.
	OnRulesChanged func()
	// Sync, when set, runs the sync rules (sync-now, describe-sync).
	Sync Syncer
	// Bundles serve export and import.
	Bundles Bundles
	// Replication, when set, reports an image's replication (by digest,
	// or by tag when the digest is ""): its digest and a status per
	// destination.
	Replication func(ctx context.Context, repo, digest, tag string) (string, []replicate.Status, error)
	// VulnDB, when set, is the vulnerability database (describe-vulndb,
	// import-vulndb).
	VulnDB VulnDB
	// Scan, when its Scanner is set, serves the image scanning operations.
	Scan ScanOptions
	// MaxPreviews bounds the lifecycle policy previews kept in memory
	// (default 64), the oldest finished one going first, and those in
	// progress (a new one is refused); they compute one at a time.
	MaxPreviews int
	// Now is the clock lifecycle policies are evaluated at (tests).
	Now    func() time.Time
	Logger *zap.Logger
}

// Service serves the admin API.
type Service struct {
	o   Options
	log *zap.Logger

	// lifecycleMu runs one lifecycle evaluation at a time.
	lifecycleMu sync.Mutex
	// previews are the lifecycle policy previews by scope.
	previewMu sync.Mutex
	previews  map[string]*preview
	// previewRun holds a token while a preview computes: one at a time.
	previewRun chan struct{}
	// base is the parent context of previews; Close cancels it and waits.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// counts are describe-cache's repository and image counts.
	counts *storeCounter
	// gc are start-gc's collections, and lifecycle run-lifecycle's runs,
	// by grace and scope, shared by the requests that wait (gc.go).
	gc        *flights[time.Duration, gcResult]
	lifecycle *flights[string, LifecycleRun]
	// repoWalks, when set (tests), counts the lifecycle's walks of every
	// repository.
	repoWalks *atomic.Int64
}

// New returns the admin API over a node's store and repositories.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPreviews <= 0 {
		o.MaxPreviews = 64
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{o: o, log: o.Logger, previews: map[string]*preview{}, base: ctx, cancel: cancel,
		gc: newFlights[time.Duration, gcResult](), lifecycle: newFlights[string, LifecycleRun](), previewRun: make(chan struct{}, 1)}
	s.counts = newStoreCounter(s)
	return s
}

// Close stops the previews and collections still running and waits for
// them.
func (s *Service) Close() {
	s.previewMu.Lock() // no preview or collection starts after this
	s.gc.mu.Lock()
	s.lifecycle.mu.Lock()
	s.cancel()
	s.lifecycle.mu.Unlock()
	s.gc.mu.Unlock()
	s.previewMu.Unlock()
	s.wg.Wait()
}

// Prefix is the path under which Handler serves.
const Prefix = "/admin/v1/"

// maxRequest bounds a request body.
const maxRequest = 1 << 20

type operation func(ctx context.Context, body []byte) (any, error)

// op adapts a typed operation: the body is decoded strictly into Req.
func op[Req any, Resp any](f func(ctx context.Context, req *Req) (*Resp, error)) operation {
	return func(ctx context.Context, body []byte) (any, error) {
		var req Req
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				return nil, invalidf("", "the request is not a valid JSON object for this operation: %v", err)
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return nil, invalidf("", "unexpected data after the request object")
			}
		}
		return f(ctx, &req)
	}
}

func (s *Service) operations() map[string]operation {
	return map[string]operation{
		"create-repository":                 op(s.createRepository),
		"describe-repositories":             op(s.describeRepositories),
		"delete-repository":                 op(s.deleteRepository),
		"put-image-tag-mutability":          op(s.putImageTagMutability),
		"list-images":                       op(s.listImages),
		"describe-images":                   op(s.describeImages),
		"batch-delete-image":                op(s.batchDeleteImage),
		"put-lifecycle-policy":              op(s.putLifecyclePolicy),
		"get-lifecycle-policy":              op(s.getLifecyclePolicy),
		"delete-lifecycle-policy":           op(s.deleteLifecyclePolicy),
		"describe-lifecycle-policies":       op(s.describeLifecyclePolicies),
		"start-lifecycle-policy-preview":    op(s.startLifecyclePolicyPreview),
		"get-lifecycle-policy-preview":      op(s.getLifecyclePolicyPreview),
		"run-lifecycle":                     op(s.runLifecycle),
		"describe-pull-through-cache-rules": op(s.describePullThroughCacheRules),
		"create-pull-through-cache-rule":    op(s.createPullThroughCacheRule),
		"delete-pull-through-cache-rule":    op(s.deletePullThroughCacheRule),
		"set-repository-policy":             op(s.setRepositoryPolicy),
		"get-repository-policy":             op(s.getRepositoryPolicy),
		"delete-repository-policy":          op(s.deleteRepositoryPolicy),
		"describe-cache":                    op(s.describeCache),
		"describe-vulndb":                   op(s.describeVulnDB),
		"put-image-scanning-configuration":  op(s.putImageScanningConfiguration),
		"start-image-scan":                  op(s.startImageScan),
		"describe-image-scan-findings":      op(s.describeImageScanFindings),
		"start-gc":                          op(s.startGC),
		"revoke-tokens":                     op(s.revokeTokens),
		"rotate-key":                        op(s.rotateKey),
		"sync-now":                          op(s.syncNow),
		"describe-sync":                     op(s.describeSync),
		"warm":                              op(s.warm),
		"describe-image-replication-status": op(s.describeImageReplicationStatus),
		"pin-image":                         op(s.pinImage),
		"unpin-image":                       op(s.unpinImage),
	}
}

// Operations lists the API's verbs, sorted.
func (s *Service) Operations() []string {
	var out []string
	for name := range s.operations() {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Handler serves the API under Prefix.
func (s *Service) Handler() http.Handler {
	ops := s.operations()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		f, known := ops[name]
		switch {
		case !ok || !known:
			writeError(w, &Error{Status: http.StatusNotFound, Code: CodeUnknownOperation,
				Message: fmt.Sprintf("no operation at %s; operations are POST %s<verb>, e.g. %sdescribe-repositories", r.URL.Path, Prefix, Prefix)})
			return
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
				Message: fmt.Sprintf("%s takes POST with a JSON body, not %s", name, r.Method)})
			return
		}
		if err := checkOrigin(r); err != nil {
			writeError(w, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeInvalidParameter,
				Message: fmt.Sprintf("the request is larger than %d bytes", maxRequest)})
			return
		case err != nil:
			writeError(w, invalidf("", "cannot read the request: %v", err))
			return
		}
		resp, err := f(r.Context(), body)
		if err != nil {
			e := s.apiError(err)
			if e.Status >= 500 {
				s.log.Error("admin operation failed", zap.String("operation", name), zap.Error(err))
			}
			writeError(w, e)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Errors: []ErrorEntry{{Code: CodeServer, Message: "cannot encode the response: " + err.Error()}}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Error codes: ECR's exception names, and a few of Berth's.
const (
	CodeInvalidParameter         = "InvalidParameterException"
	CodeRepositoryNotFound       = "RepositoryNotFoundException"
	CodeRepositoryAlreadyExists  = "RepositoryAlreadyExistsException"
	CodeRepositoryNotEmpty       = "RepositoryNotEmptyException"
	CodeImageNotFound            = "ImageNotFoundException"
	CodeLifecyclePolicyNotFound  = "LifecyclePolicyNotFoundException"
	CodeRepositoryPolicyNotFound = "RepositoryPolicyNotFoundException"
	CodePreviewNotFound          = "LifecyclePolicyPreviewNotFoundException"
	CodePreviewInProgress        = "LifecyclePolicyPreviewInProgressException"
	CodeRuleAlreadyExists        = "PullThroughCacheRuleAlreadyExistsException"
	CodeRuleNotFound             = "PullThroughCacheRuleNotFoundException"
	CodeServer                   = "ServerException"
	CodeUnknownOperation         = "UnknownOperationException"
	CodeMethodNotAllowed         = "MethodNotAllowedException"
	CodeUnsupportedMediaType     = "UnsupportedMediaTypeException"
	CodeAccessDenied             = "AccessDeniedException"
)

// Error is an API error. More holds further entries sent with it (one per
// invalid field of a lifecycle policy).
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
	More    []ErrorEntry
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorEntry is one entry of an error response.
type ErrorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault, when one is.
	Field string `json:"field,omitempty"`
}

type errorBody struct {
	Errors []ErrorEntry `json:"errors"`
}

func writeError(w http.ResponseWriter, e *Error) {
	body := errorBody{Errors: append([]ErrorEntry{{Code: e.Code, Message: e.Message, Field: e.Field}}, e.More...)}
	writeJSON(w, e.Status, body)
}

// invalidf is an InvalidParameterException about field.
// serverStatus is the status of a ServerException for a domain error no
// ECR exception names.
func serverStatus(kind error) int {
	switch kind {
	case errdefs.ErrStoreFull:
		return http.StatusInsufficientStorage
	case errdefs.ErrUpstreamBackoff:
		return http.StatusServiceUnavailable
	case errdefs.ErrUpstreamTimeout:
		return http.StatusGatewayTimeout
	case errdefs.ErrUpstreamUnavailable:
		return http.StatusBadGateway
	case errdefs.ErrTagImmutable:
		return http.StatusForbidden
	case errdefs.ErrBlobUnknown, errdefs.ErrUploadUnknown:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func invalidf(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: msg, Field: field}
}

func notFound(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

func conflict(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: code, Message: fmt.Sprintf(format, args...)}
}

// apiError maps an error from the layers below to the API's: it is the
// one place the domain errors (package errdefs) get their ECR exception.
func (s *Service) apiError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, reclaim.ErrRepositoryNotEmpty) {
		return conflict(CodeRepositoryNotEmpty, "%s", err.Error())
	}
	if kind, msg, _ := errdefs.KindOf(err); kind != nil {
		switch kind {
		case errdefs.ErrRepositoryUnknown:
			return notFound(CodeRepositoryNotFound, "%s", msg)
		case errdefs.ErrManifestUnknown:
			return notFound(CodeImageNotFound, "%s", msg)
		case errdefs.ErrRepositoryExists:
			return conflict(CodeRepositoryAlreadyExists, "%s", msg)
		case errdefs.ErrNameInvalid, errdefs.ErrInvalidParameter, errdefs.ErrManifestInvalid,
			errdefs.ErrManifestBlobUnknown, errdefs.ErrDigestInvalid:
			return invalidf("", "%s", msg)
		}
		return &Error{Status: serverStatus(kind), Code: CodeServer, Message: msg}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeServer, Message: "the operation was cut short: " + err.Error()}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeServer, Message: err.Error()}
}
