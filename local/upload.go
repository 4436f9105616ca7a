package local

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"berth/errdefs"
	"berth/registry"
	"berth/store"

	"go.uber.org/zap"
)

// upload is one session, bound to its repository.
type upload struct {
	r    *Repos
	id   string
	repo string
	size int64
}

// StartUpload opens a session, creating the repository if auto-create is on.
func (r *Repos) StartUpload(ctx context.Context, repo registry.Repo) (registry.Upload, error) {
	if _, err := r.ensureRepository(ctx, repo.Name); err != nil {
		return nil, err
	}
	u, err := r.store.CreateUpload(ctx, repo.Name)
	if err != nil {
		return nil, err
	}
	return &upload{r: r, id: u.ID, repo: repo.Name}, nil
}

// GetUpload finds an open session of repo.
func (r *Repos) GetUpload(ctx context.Context, repo registry.Repo, id string) (registry.Upload, error) {
	u, size, err := r.store.GetUpload(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Repo != repo.Name {
		return nil, errdefs.New(errdefs.ErrUploadUnknown, "upload %s is unknown in %s", id, repo.Name)
	}
	if err != nil {
		return nil, err
	}
	return &upload{r: r, id: id, repo: repo.Name, size: size}, nil
}

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return u.size }

// lock serialises writes to a session across requests.
func (r *Repos) lock(id string) func() {
	r.uploadsMu.Lock()
	m, ok := r.uploads[id]
	if !ok {
		m = &sync.Mutex{}
		r.uploads[id] = m
	}
	r.uploadsMu.Unlock()
	m.Lock()
	return m.Unlock
}

func (r *Repos) forget(id string) {
	r.uploadsMu.Lock()
	delete(r.uploads, id)
	r.uploadsMu.Unlock()
}

func (u *upload) Append(ctx context.Context, body io.Reader) (int64, error) {
	defer u.r.lock(u.id)()
	n, err := u.r.store.AppendUpload(ctx, u.id, body)
	if err != nil {
		return n, err
	}
	u.size = n
	return n, nil
}

func (u *upload) Commit(ctx context.Context, d registry.Digest) error {
	defer u.r.lock(u.id)()
	defer u.r.reclaim.Push()()
	if _, err := u.r.store.CommitUpload(ctx, u.id, d.String()); err != nil {
		if errors.Is(err, store.ErrDigestMismatch) {
			return errdefs.New(errdefs.ErrDigestInvalid, "%s", err.Error())
		}
		return err
	}
	u.r.forget(u.id)
	b := u.r.store.NewBatch()
	if err := b.Link(store.LocalKey(u.repo), d.String()); err != nil {
		b.Close()
		return err
	}
	return b.Commit()
}

func (u *upload) Cancel(ctx context.Context) error {
	defer u.r.lock(u.id)()
	u.r.forget(u.id)
	return u.r.store.DeleteUpload(ctx, u.id)
}

// ExpireUploads ends sessions older than maxAge and reclaims their bytes.
func (r *Repos) ExpireUploads(ctx context.Context, maxAge time.Duration) (int, error) {
	n, err := r.store.ExpireUploads(ctx, maxAge)
	if err != nil {
		r.log.Warn("expire uploads", zap.Error(err))
	}
	return n, err
}
