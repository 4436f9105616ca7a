package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
)

// memStore is an in-memory backend with every ability of write.go, for the
// tests of the write and discovery endpoints. Repositories are keyed by
// name; the ns parameter is ignored, as uploads are local.
type memStore struct {
	mu        sync.Mutex
	manifests map[string]*memManifest // "<name>@<digest>"
	tags      map[string]Digest       // "<name>:<tag>"
	blobs     map[string][]byte       // "<name>@<digest>"
	uploads   map[string]*memUpload   // id

	// Calls, for assertions.
	mounts []memMount
	puts   []ManifestPut
}

type memManifest struct {
	mediaType string
	body      []byte
	digest    Digest
	subject   Digest
	desc      Descriptor // its entry in a referrers list
}

type memMount struct {
	repo, from string
	digest     Digest
}

func newMemStore() *memStore {
	return &memStore{
		manifests: map[string]*memManifest{},
		tags:      map[string]Digest{},
		blobs:     map[string][]byte{},
		uploads:   map[string]*memUpload{},
	}
}

// addBlob stores data in repo and returns its sha256 digest.
func (m *memStore) addBlob(repo string, data []byte) Digest {
	d := FromBytes(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[repo+"@"+d.String()] = data
	return d
}

func (m *memStore) blob(repo string, d Digest) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[repo+"@"+d.String()]
	return b, ok
}

func (m *memStore) lastPut() ManifestPut {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.puts) == 0 {
		return ManifestPut{}
	}
	return m.puts[len(m.puts)-1]
}

func (m *memStore) lastMount() (memMount, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.mounts) == 0 {
		return memMount{}, false
	}
	return m.mounts[len(m.mounts)-1], true
}

func (m *memStore) uploadCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.uploads)
}

// knownRepo reports whether name holds anything. Callers hold m.mu.
func (m *memStore) knownRepo(name string) bool {
	return slices.Contains(m.repos(), name)
}

// repos lists the repositories holding anything, sorted. Callers hold m.mu.
func (m *memStore) repos() []string {
	seen := map[string]bool{}
	for k := range m.manifests {
		seen[repoOf(k)] = true
	}
	for k := range m.blobs {
		seen[repoOf(k)] = true
	}
	for k := range m.tags {
		seen[repoOf(k)] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// repoOf returns the repository part of a "<name>@<digest>" or
// "<name>:<tag>" key.
func repoOf(key string) string {
	if i := strings.IndexByte(key, '@'); i >= 0 {
		return key[:i]
	}
	return key[:strings.LastIndexByte(key, ':')]
}

func (m *memStore) GetManifest(_ context.Context, req ManifestRequest) (*Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := req.Digest
	if d == "" {
		var ok bool
		if d, ok = m.tags[req.Repo.Name+":"+req.Reference]; !ok {
			return nil, ErrManifestUnknown(req.Reference)
		}
	}
	mf, ok := m.manifests[req.Repo.Name+"@"+d.String()]
	if !ok {
		return nil, ErrManifestUnknown(req.Reference)
	}
	return &Manifest{MediaType: mf.mediaType, Digest: mf.digest, Body: mf.body, Source: SourceLocal}, nil
}

func (m *memStore) GetBlob(_ context.Context, req BlobRequest) (Blob, error) {
	b, ok := m.blob(req.Repo.Name, req.Digest)
	if !ok {
		return nil, ErrBlobUnknown(req.Digest.String())
	}
	return newMemBlob(b), nil
}

func (m *memStore) ListTags(_ context.Context, repo Repo) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.knownRepo(repo.Name) {
		return nil, ErrNameUnknown(repo.Name)
	}
	tags := []string{}
	for k := range m.tags {
		if name, tag, _ := strings.Cut(k, ":"); name == repo.Name {
			tags = append(tags, tag)
		}
	}
	sort.Strings(tags)
	return tags, nil
}

// Uploads.

type memUpload struct {
	store *memStore
	repo  string
	id    string

	mu   sync.Mutex
	data []byte
}

func (m *memStore) StartUpload(_ context.Context, repo Repo) (Upload, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	u := &memUpload{store: m, repo: repo.Name, id: hex.EncodeToString(b[:])}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uploads[u.id] = u
	return u, nil
}

func (m *memStore) GetUpload(_ context.Context, repo Repo, id string) (Upload, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.uploads[id]
	if !ok || u.repo != repo.Name {
		return nil, Errorf(http.StatusNotFound, CodeBlobUploadUnknown, "upload %q is unknown", id)
	}
	return u, nil
}

func (u *memUpload) ID() string { return u.id }

func (u *memUpload) Size() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return int64(len(u.data))
}

// Append is all or nothing: a reader that fails leaves the session as it
// was.
func (u *memUpload) Append(_ context.Context, r io.Reader) (int64, error) {
	b, err := io.ReadAll(r)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		return int64(len(u.data)), err
	}
	u.data = append(u.data, b...)
	return int64(len(u.data)), nil
}

func (u *memUpload) Commit(_ context.Context, d Digest) error {
	u.mu.Lock()
	data := slices.Clone(u.data)
	u.mu.Unlock()
	if !d.Verify(data) {
		return ErrDigestInvalid("the upload does not match digest " + d.String())
	}
	s := u.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.uploads[u.id]; !ok {
		return Errorf(http.StatusNotFound, CodeBlobUploadUnknown, "upload %q is unknown", u.id)
	}
	s.blobs[u.repo+"@"+d.String()] = data
	delete(s.uploads, u.id)
	return nil
}

func (u *memUpload) Cancel(context.Context) error {
	s := u.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.uploads[u.id]; !ok {
		return Errorf(http.StatusNotFound, CodeBlobUploadUnknown, "upload %q is unknown", u.id)
	}
	delete(s.uploads, u.id)
	return nil
}

func (m *memStore) MountBlob(_ context.Context, repo Repo, fromRepo Repo, d Digest) error {
	from := fromRepo.Name
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mounts = append(m.mounts, memMount{repo: repo.Name, from: from, digest: d})
	if from != "" {
		b, ok := m.blobs[from+"@"+d.String()]
		if !ok {
			return ErrBlobUnknown(d.String())
		}
		m.blobs[repo.Name+"@"+d.String()] = b
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m.blobs)) {
		if strings.HasSuffix(k, "@"+d.String()) {
			m.blobs[repo.Name+"@"+d.String()] = m.blobs[k]
			return nil
		}
	}
	return ErrBlobUnknown(d.String())
}

// Manifests.

// manifestFields are the parts of a manifest memStore looks at.
type manifestFields struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *Descriptor       `json:"config"`
	Layers       []Descriptor      `json:"layers"`
	Subject      *Descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func (m *memStore) PutManifest(_ context.Context, req ManifestPut) (PutResult, error) {
	var f manifestFields
	if err := json.Unmarshal(req.Body, &f); err != nil {
		return PutResult{}, Errorf(http.StatusBadRequest, CodeManifestInvalid, "manifest: %v", err)
	}
	if f.MediaType != "" && req.MediaType != "" && f.MediaType != req.MediaType {
		return PutResult{}, Errorf(http.StatusBadRequest, CodeManifestInvalid, "mediaType %q does not match Content-Type %q", f.MediaType, req.MediaType)
	}
	d := req.Digest
	if d == "" {
		d = FromBytes(req.Body)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts = append(m.puts, req)
	var refs []Descriptor
	if f.Config != nil {
		refs = append(refs, *f.Config)
	}
	for _, l := range append(refs, f.Layers...) {
		if strings.Contains(l.MediaType, ".nondistributable.") {
			continue // pushed elsewhere, by design
		}
		if _, ok := m.blobs[req.Repo.Name+"@"+l.Digest.String()]; !ok {
			return PutResult{}, Errorf(http.StatusBadRequest, CodeManifestBlobUnknown, "blob %s is unknown", l.Digest)
		}
	}
	mt := req.MediaType
	if mt == "" {
		mt = f.MediaType
	}
	mf := &memManifest{mediaType: mt, body: slices.Clone(req.Body), digest: d}
	at := f.ArtifactType
	if at == "" && f.Config != nil {
		at = f.Config.MediaType
	}
	mf.desc = Descriptor{MediaType: mt, Digest: d, Size: int64(len(req.Body)), ArtifactType: at, Annotations: f.Annotations}
	if f.Subject != nil {
		mf.subject = f.Subject.Digest
	}
	m.manifests[req.Repo.Name+"@"+d.String()] = mf
	if req.Digest == "" {
		m.tags[req.Repo.Name+":"+req.Reference] = d
	}
	for _, t := range req.Tags {
		m.tags[req.Repo.Name+":"+t] = d
	}
	return PutResult{Digest: d, Subject: mf.subject}, nil
}

func (m *memStore) DeleteManifest(_ context.Context, repo Repo, reference string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !IsDigest(reference) {
		if _, ok := m.tags[repo.Name+":"+reference]; !ok {
			return ErrManifestUnknown(reference)
		}
		delete(m.tags, repo.Name+":"+reference)
		return nil
	}
	if _, ok := m.manifests[repo.Name+"@"+reference]; !ok {
		return ErrManifestUnknown(reference)
	}
	delete(m.manifests, repo.Name+"@"+reference)
	for k, d := range m.tags {
		if repoOf(k) == repo.Name && d.String() == reference {
			delete(m.tags, k)
		}
	}
	return nil
}

func (m *memStore) DeleteBlob(_ context.Context, repo Repo, d Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[repo.Name+"@"+d.String()]; !ok {
		return ErrBlobUnknown(d.String())
	}
	delete(m.blobs, repo.Name+"@"+d.String())
	return nil
}

// Discovery.

func (m *memStore) Catalog(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.repos(), nil
}

// Referrers answers NAME_UNKNOWN for a repository it does not hold, so the
// tests see the Server turn it into an empty list.
func (m *memStore) Referrers(_ context.Context, repo Repo, d Digest) ([]Descriptor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.knownRepo(repo.Name) {
		return nil, ErrNameUnknown(repo.Name)
	}
	var out []Descriptor
	for k, mf := range m.manifests {
		if repoOf(k) == repo.Name && mf.subject == d {
			out = append(out, mf.desc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// sameRepo compares a repository the backend got with the one a test
// expects: without a Resolver the Server resolves every name to a local
// repository of the same name.
func sameRepo(got, want Repo) bool {
	return got.Name == want.Name && got.NS == want.NS && got.Target == Target{Name: want.Name}
}
