package registry

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// resolvingStore is a memStore that routes names under "hub/" (or any
// name with ns=hub.example) to an upstream rule "hub", and counts how
// often it is asked.
type resolvingStore struct {
	*memStore
	mu       sync.Mutex
	resolved []Repo
	mountSrc []Repo
	lastGet  Repo
}

func (s *resolvingStore) Resolve(repo Repo) (Target, error) {
	s.mu.Lock()
	s.resolved = append(s.resolved, repo)
	s.mu.Unlock()
	switch {
	case repo.NS == "hub.example":
		return Target{Name: "hub/" + repo.Name, Upstream: "hub", Remote: repo.Name}, nil
	case repo.NS != "":
		return Target{}, Errorf(http.StatusNotFound, CodeNameUnknown, "registry %q is not mirrored here", repo.NS)
	case strings.HasPrefix(repo.Name, "hub/"):
		return Target{Name: repo.Name, Upstream: "hub", Remote: strings.TrimPrefix(repo.Name, "hub/")}, nil
	}
	return Target{Name: repo.Name}, nil
}

func (s *resolvingStore) GetManifest(ctx context.Context, req ManifestRequest) (*Manifest, error) {
	s.mu.Lock()
	s.lastGet = req.Repo
	s.mu.Unlock()
	return s.memStore.GetManifest(ctx, req)
}

func (s *resolvingStore) MountBlob(ctx context.Context, repo Repo, from Repo, d Digest) error {
	s.mu.Lock()
	s.mountSrc = append(s.mountSrc, from)
	s.mu.Unlock()
	return s.memStore.MountBlob(ctx, repo, from, d)
}

// The Server resolves a request's repository once, before anything else
// sees it, and hands the target down; a mount's source is resolved with
// the request's ns.
func TestServerResolvesOnce(t *testing.T) {
	st := &resolvingStore{memStore: newMemStore()}
	e := newWriteEnvBackend(t, st.memStore, st)
	resp, err := e.client.Get(e.srv.URL + "/v2/app/manifests/v1?ns=hub.example")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(st.resolved) != 1 {
		t.Fatalf("resolved %d times, want once: %+v", len(st.resolved), st.resolved)
	}
	if want := (Target{Name: "hub/app", Upstream: "hub", Remote: "app"}); st.lastGet.Target != want {
		t.Fatalf("backend got target %+v, want %+v", st.lastGet.Target, want)
	}

	// An ns nothing mirrors is the resolver's 404, and the backend is not
	// asked.
	st.lastGet = Repo{}
	resp, err = e.client.Get(e.srv.URL + "/v2/app/manifests/v1?ns=other.example")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || st.lastGet.Name != "" {
		t.Fatalf("unknown ns: status %d, backend asked for %+v", resp.StatusCode, st.lastGet)
	}

	// A mount's source is resolved once too, and reaches the backend
	// resolved.
	st.resolved = nil
	d := e.store.addBlob("hub/lib", testBytes(100))
	resp, err = e.client.Post(e.srv.URL+"/v2/private/app/blobs/uploads/?mount="+d.String()+"&from=hub/lib", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mount: status %d, want 201", resp.StatusCode)
	}
	if len(st.resolved) != 2 || len(st.mountSrc) != 1 ||
		st.mountSrc[0].Target != (Target{Name: "hub/lib", Upstream: "hub", Remote: "lib"}) {
		t.Fatalf("resolved %+v, mount source %+v", st.resolved, st.mountSrc)
	}
}
