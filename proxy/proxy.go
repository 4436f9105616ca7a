// Package proxy is Berth's pull-through logic: it serves the registry API
// from the store and fills misses from upstreams through itself.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"berth/cluster"
	"berth/errdefs"
	"berth/metrics"
	"berth/registry"
	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Options configure a Proxy.
type Options struct {
	// FillTimeout bounds one blob fill, detached from the client that
	// started it.
	FillTimeout time.Duration
	Logger      *zap.Logger
	// Now is the clock (tests).
	Now func() time.Time
	// Metrics, when set, counts hits, misses and fills.
	Metrics *metrics.Metrics
	// Reserve, when set, is asked for room before a fill of size bytes
	// writes anything; it may evict, or refuse with an error for the
	// client (507 when the store is full).
	Reserve func(ctx context.Context, size int64) error
	// Cluster, when set, makes misses go to the digest's or tag's owner
	// nodes before the upstream.
	Cluster *cluster.Cluster
	// ManifestStored, when set, is told of every manifest a pull stored
	// (scan on pull); it must not block.
	ManifestStored func(t upstream.Target, digest, mediaType string)
}

// Proxy implements the registry's backend abilities over a store and a set
// of upstreams.
type Proxy struct {
	store *store.Store
	// routes returns the routing rules in force (the node's live config);
	// a request or fill keeps the router it started with.
	routes func() *upstream.Router
	log    *zap.Logger
	opts   Options
	now    func() time.Time
	// baseCtx is the parent of detached fills; cancelled by Close.
	baseCtx context.Context
	stop    context.CancelFunc

	fills     fillGroup
	manifests singleflight.Group
}

// New returns a Proxy over store, routing by the rules routes returns when
// asked (upstream.Fixed for rules that never change). Close it to stop
// fills still running.
func New(store *store.Store, routes func() *upstream.Router, opts Options) *Proxy {
	if opts.FillTimeout <= 0 {
		opts.FillTimeout = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &Proxy{
		store: store, routes: routes, log: opts.Logger, opts: opts, now: opts.Now,
		baseCtx: ctx, stop: stop, fills: fillGroup{fills: map[string]*fill{}},
	}
	return p
}

// Router is the routing rules in force.
func (p *Proxy) Router() *upstream.Router { return p.routes() }

// Close cancels fills in flight, discarding their partial data, and waits
// for them to end, so the store can be closed after it.
func (p *Proxy) Close() {
	p.stop()
	p.fills.wg.Wait()
}

// InFlight is the number of blob fills running.
func (p *Proxy) InFlight() int { return p.fills.count() }

// Resolve implements registry.Resolver for the pull-through cache: a name
// the rules route to an upstream is that upstream's repository, under its
// canonical name; any other name is a local repository (which the proxy
// alone does not serve).
func (p *Proxy) Resolve(repo registry.Repo) (registry.Target, error) {
	t, err := p.Router().Route(repo.NS, repo.Name)
	switch {
	case errors.Is(err, upstream.ErrUnknownNamespace):
		return registry.Target{}, errdefs.New(errdefs.ErrRepositoryUnknown,
			"registry %q is not mirrored here; add an upstream rule with registry: %s", repo.NS, repo.NS)
	case errors.Is(err, upstream.ErrNoRoute):
		return registry.Target{Name: repo.Name}, nil
	case err != nil:
		return registry.Target{}, err
	}
	return registry.Target{Name: t.Canonical(), Upstream: t.Upstream.Rule.Name, Remote: t.Repo}, nil
}

// route finds the upstream of a resolved repository. The registry resolves
// every request once; a repository that arrives unresolved (an internal
// caller) is resolved here.
func (p *Proxy) route(repo registry.Repo) (upstream.Target, error) {
	t := repo.Target
	if t.Name == "" {
		var err error
		if t, err = p.Resolve(repo); err != nil {
			return upstream.Target{}, err
		}
	}
	if t.Local() {
		return upstream.Target{}, errdefs.RepositoryUnknown(repo.Name)
	}
	u := p.Router().Upstream(t.Upstream)
	if u == nil { // the rule was removed by a reload since the request resolved
		return upstream.Target{}, errdefs.New(errdefs.ErrRepositoryUnknown,
			"upstream %s of repository %s is no longer configured", t.Upstream, repo.Name)
	}
	return upstream.Target{Upstream: u, Repo: t.Remote}, nil
}

// upstreamError turns an upstream failure into the error the client sees.
func (p *Proxy) upstreamError(t upstream.Target, what string, notFound, err error) error {
	switch {
	case errors.Is(err, upstream.ErrNotFound):
		return notFound
	case errors.Is(err, context.Canceled):
		return err
	}
	name := t.Upstream.Rule.Name
	if errors.Is(err, upstream.ErrOffline) {
		kind, _, _ := errdefs.KindOf(notFound)
		return errdefs.Wrap(kind, err, "the mirror is offline for upstream %s and does not hold %s; "+
			"bring it here with berth import, or set offline: false for the rule", name, what)
	}
	var be *upstream.BackoffError
	if errors.As(err, &be) {
		return &errdefs.Error{Kind: errdefs.ErrUpstreamBackoff,
			Msg:        fmt.Sprintf("upstream %s asked Berth to wait until %s (quota) and %s is not cached here", name, be.Until.UTC().Format(time.RFC3339), what),
			RetryAfter: time.Until(be.Until), Err: err}
	}
	// The cause in plain words goes to the client too (docker, skopeo and
	// crane print the message), so the user sees why without Berth's log.
	cause := ""
	if c := upstream.Cause(err); c != "" {
		cause = ": " + c
	}
	if errors.Is(err, upstream.ErrTimeout) {
		return errdefs.Wrap(errdefs.ErrUpstreamTimeout, err,
			"upstream %s did not answer for %s in time and it is not cached here%s", name, what, cause)
	}
	msg := fmt.Sprintf("upstream %s failed for %s and it is not cached here%s", name, what, cause)
	var se *upstream.StatusError
	if errors.As(err, &se) {
		msg = fmt.Sprintf("upstream %s answered %d for %s and it is not cached here", name, se.Status, what)
	}
	if errors.Is(err, store.ErrDigestMismatch) {
		msg = fmt.Sprintf("upstream %s sent content for %s that does not match its digest; nothing was cached", name, what)
	}
	return errdefs.Wrap(errdefs.ErrUpstreamUnavailable, err, "%s", msg)
}

// ListTags lists the upstream's tags, or the cached ones when the upstream
// cannot be asked.
func (p *Proxy) ListTags(ctx context.Context, repo registry.Repo) ([]string, error) {
	t, err := p.route(repo)
	if err != nil {
		return nil, err
	}
	tags, err := t.Upstream.ListTags(ctx, t.Repo)
	if err == nil {
		sort.Strings(tags)
		return tags, nil
	}
	cached, cerr := p.store.ListTags(ctx, t.Upstream.Rule.Name, t.Repo)
	cached = slices.DeleteFunc(cached, hiddenTag)
	if cerr == nil && len(cached) > 0 && !errors.Is(err, upstream.ErrNotFound) {
		p.log.Warn("serving cached tag list", zap.String("repo", t.Repo), zap.Error(err))
		return cached, nil
	}
	return nil, p.upstreamError(t, "the tag list of "+t.Repo, errdefs.RepositoryUnknown(repo.Name), err)
}

// GetBlob serves a blob from the store, or starts (or joins) its fill.
func (p *Proxy) GetBlob(ctx context.Context, req registry.BlobRequest) (registry.Blob, error) {
	t, err := p.route(req.Repo)
	if err != nil {
		return nil, err
	}
	return p.blob(ctx, t, req)
}

// blob serves digest d on the cached route t. The store answers only
// when t's repository sees the blob (store.Visible); a blob stored for
// another route is confirmed with t's upstream first, and anything else is
// filled from it, so stored-but-invisible content is answered as the
// upstream answers for t, never from the store alone.
func (p *Proxy) blob(ctx context.Context, t upstream.Target, req registry.BlobRequest) (registry.Blob, error) {
	d := req.Digest.String()
	if info, err := p.store.Visible(ctx, origin(t).Repo, d); err == nil {
		return p.fromStore(ctx, d, info.Size, "hit"), nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if storeOnly(ctx) {
		return nil, errdefs.BlobUnknown(d)
	}
	return p.notSeen(ctx, t, req)
}

// notSeen serves a blob that t's repository did not see in the store when
// blob read it: by confirming a copy stored for another route, from a fill
// (joined or started), or, for a HEAD, from its sources. A fill of the same
// scope may have committed since that read; each step that would ask
// elsewhere reads the store again first (confirm, headBlob, storedAlready),
// so such a request asks no one.
func (p *Proxy) notSeen(ctx context.Context, t upstream.Target, req registry.BlobRequest) (registry.Blob, error) {
	d := req.Digest.String()
	if info, result, err := p.confirm(ctx, t, d); result != "" {
		if err != nil {
			return nil, err
		}
		return p.fromStore(ctx, d, info.Size, result), nil
	} else if err != nil {
		return nil, err
	}
	key := fillKey(t, d)
	srcs := p.sources(ctx, t, d)
	if req.Head {
		return p.headBlob(ctx, t, key, d, srcs)
	}
	p.opts.Metrics.CacheResult("blob", "miss")
	f := p.fills.join(key, d, func(f *fill) { p.runFill(f, t.Upstream, origin(t), srcs) })
	size, err := f.waitStarted(ctx)
	if err != nil {
		var de *errdefs.Error
		if ctx.Err() != nil || errors.As(err, &de) {
			return nil, err
		}
		return nil, p.upstreamError(t, "blob "+d, errdefs.BlobUnknown(d), err)
	}
	if size < 0 {
		return nil, p.upstreamError(t, "blob "+d, errdefs.BlobUnknown(d), upstream.ErrUnavailable)
	}
	return &fillBlob{p: p, f: f}, nil
}

// headBlob answers a HEAD for a blob not stored here: from a fill of the
// same scope in flight, else from the first source that knows its size.
func (p *Proxy) headBlob(ctx context.Context, t upstream.Target, key, d string, srcs []source) (registry.Blob, error) {
	if f := p.fills.inFlight(key); f != nil {
		if size, err := f.waitStarted(ctx); err == nil {
			return &headBlob{size: size}, nil
		}
	}
	// A fill leaves the group only after its commit (runFill): one that
	// stored the blob for t and left before the look above is seen here.
	if info, err := p.store.Visible(ctx, origin(t).Repo, d); err == nil {
		return p.fromStore(ctx, d, info.Size, "hit"), nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var size int64 = -1
	var err error
	for _, src := range srcs {
		if size, err = src.head(ctx); err == nil && size >= 0 {
			break
		}
	}
	if err != nil || size < 0 {
		return nil, p.upstreamError(t, "blob "+d, errdefs.BlobUnknown(d), err)
	}
	return &headBlob{size: size}, nil
}

// confirm handles a blob that is stored but that t's repository does not
// see: another route brought it, or an older version stored it. t's
// upstream is asked with a HEAD; when it has the blob, the stored bytes
// become t's (store.Origin) and are served without a second download.
// result is how the stored blob is counted ("revalidated", or "hit" when a
// fill for t stored it since the caller read the store), "" when the store
// does not hold d at all.
func (p *Proxy) confirm(ctx context.Context, t upstream.Target, d string) (info store.BlobInfo, result string, err error) {
	info, err = p.store.StatBlob(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return info, "", nil
	} else if err != nil {
		return info, "", err
	}
	// A fill for t's scope commits the blob and t's link in one batch: one
	// that committed since the caller's read is seen now, and no HEAD is
	// needed.
	if vi, err := p.store.Visible(ctx, origin(t).Repo, d); err == nil {
		return vi, "hit", nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return info, "", err
	}
	size, err := t.Upstream.HeadBlob(ctx, t.Repo, d)
	// Only an answer naming the stored size confirms: a 200 without a
	// length proves nothing about these bytes.
	if err == nil && size != info.Size {
		err = fmt.Errorf("upstream %s reports blob %s as %d bytes, not %d: %w", t.Upstream.Rule.Name, d, size, info.Size, upstream.ErrUnavailable)
	}
	if err != nil {
		return info, "revalidated", p.upstreamError(t, "blob "+d, errdefs.BlobUnknown(d), err)
	}
	b := p.store.NewBatch()
	defer b.Close()
	if err := b.LinkOrigin(origin(t), d); err != nil {
		return info, "revalidated", err
	}
	return info, "revalidated", b.Commit()
}

// origin is what t's fetches are recorded as: content of t's cached
// repository, shared with the rule's other repositories only when the
// rule has no credentials.
func origin(t upstream.Target) store.Origin {
	return store.Origin{Repo: store.CachedKey(t.Upstream.Rule.Name, t.Repo), Shared: !t.Upstream.Rule.HasCredentials()}
}

// fillKey is the scope in which requests share one fill of d: the rule for
// a rule without credentials (its repositories see each other's blobs),
// else the one repository. A request never reads a fill it may not see.
func fillKey(t upstream.Target, d string) string {
	if o := origin(t); !o.Shared {
		return d + "\x00" + o.Repo.Encode()
	}
	return d + "\x00" + t.Upstream.Rule.Name
}

// headBlob answers a HEAD for a blob not stored here.
type headBlob struct{ size int64 }

func (b *headBlob) Size() int64             { return b.size }
func (b *headBlob) Source() registry.Source { return registry.SourceUpstream }
func (b *headBlob) Open(context.Context, int64) (io.ReadCloser, error) {
	return nil, errors.New("a HEAD answer has no body")
}

// storedBlob serves a committed blob from its file.
func storedBlob(st *store.Store, digest string, size int64) registry.Blob {
	return &registry.SourcedBlob{BlobBody: &store.BlobFile{Store: st, Digest: digest, Len: size}, From: registry.SourceStore, Digest: digest}
}

// fromStore serves committed blob d from the store, counted as result.
func (p *Proxy) fromStore(ctx context.Context, d string, size int64, result string) registry.Blob {
	p.opts.Metrics.CacheResult("blob", result)
	_ = p.store.Touch(ctx, d)
	return storedBlob(p.store, d, size)
}
