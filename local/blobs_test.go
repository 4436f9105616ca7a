package local_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/local"
	"berth/registry"
)

// A layer pulled through the cache is stored once, but a local repository
// does not see it (it came from an upstream, not from a push there): the
// push uploads it, and the store keeps one copy.
func TestCachedBlobIsDeduplicated(t *testing.T) {
	e := newEnv(t, envOptions{cachedPrefix: true})
	layer := randomBytes("alpine layer", 8000)
	d := e.cacheBlob("library/alpine", layer)

	// team/app does not exist yet: auto-create makes it on the first push,
	// whose client HEADs the layers first.
	if got := e.headBlob("team/app", d); got != http.StatusNotFound {
		t.Fatalf("HEAD of a cached blob in a new repository: %d, want 404", got)
	}
	cfg := newBlob(ociConfig, []byte(`{"app":1}`))
	e.pushBlob("team/app", cfg.data)
	im := imageOf(cfg, newBlob(ociLayer, layer))
	resp, body := e.do(http.MethodPut, "/v2/team/app/manifests/v1", im.body, "Content-Type", ociManifest)
	wantError(t, resp, body, http.StatusBadRequest, registry.CodeManifestBlobUnknown)

	e.pushBlob("team/app", layer)
	e.pushManifest("team/app", "v1", im)
	e.wantBlob("team/app", layer)
	if n := e.blobFiles(d); n != 1 {
		t.Fatalf("%d files hold the layer, want 1", n)
	}
	if f := e.uploadFiles(); len(f) != 0 {
		t.Fatalf("upload files left: %v", f)
	}
	if n := e.blobFiles(""); n != 2 {
		t.Fatalf("%d blob files in the store, want 2 (layer and config)", n)
	}
}

func TestCachedBlobInCreatedRepository(t *testing.T) {
	e := newEnv(t, envOptions{cachedPrefix: true, manualCreate: true})
	layer := randomBytes("alpine layer", 2000)
	d := e.cacheBlob("library/alpine", layer)
	// Without auto-create an unknown repository is unknown...
	resp, body := e.do(http.MethodGet, "/v2/team/app/blobs/"+d, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeNameUnknown)
	// ...and once created it does not see the cached layer either, until
	// it mounts it from the cached repository.
	e.createRepo("team/app", local.Mutable)
	if got := e.headBlob("team/app", d); got != http.StatusNotFound {
		t.Fatalf("HEAD of a cached blob in a created repository: %d, want 404", got)
	}
	resp, body = e.do(http.MethodPost, "/v2/team/app/blobs/uploads/?mount="+d+"&from=hub/library/alpine", nil)
	wantStatus(t, resp, body, http.StatusCreated)
	cfg := newBlob(ociConfig, []byte(`{"app":2}`))
	e.pushBlob("team/app", cfg.data)
	e.pushManifest("team/app", "v1", imageOf(cfg, newBlob(ociLayer, layer)))
	e.wantBlob("team/app", layer)
	if n := e.blobFiles(d); n != 1 {
		t.Fatalf("%d files hold the layer, want 1", n)
	}
}

func TestMountFromCachedRepository(t *testing.T) {
	e := newEnv(t, envOptions{cachedPrefix: true})
	layer := randomBytes("alpine layer", 3000)
	d := e.cacheBlob("library/alpine", layer)

	tests := []struct {
		name       string
		repo       string
		query      string
		wantStatus int
	}{
		{name: "from cached repository with prefix", repo: "m/one", query: "?mount=" + d + "&from=hub/library/alpine", wantStatus: http.StatusCreated},
		{name: "anonymous gets a session", repo: "m/two", query: "?mount=" + d, wantStatus: http.StatusAccepted},
		{name: "from a local repository that has it", repo: "m/three", query: "?mount=" + d + "&from=m/one", wantStatus: http.StatusCreated},
		{name: "from a local repository that never saw it gets a session", repo: "m/four", query: "?mount=" + d + "&from=m/empty", wantStatus: http.StatusAccepted},
		{name: "from another cached repository gets a session", repo: "m/seven", query: "?mount=" + d + "&from=hub/library/other", wantStatus: http.StatusAccepted},
		{name: "unknown blob gets a session", repo: "m/five", query: "?mount=" + digestOf([]byte("nope")) + "&from=hub/library/alpine", wantStatus: http.StatusAccepted},
		{name: "unknown blob anonymous gets a session", repo: "m/six", query: "?mount=" + digestOf([]byte("nope")), wantStatus: http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			resp, body := e.do(http.MethodPost, "/v2/"+tt.repo+"/blobs/uploads/"+tt.query, nil)
			wantStatus(t, resp, body, tt.wantStatus)
			if tt.wantStatus == http.StatusAccepted {
				if !strings.HasPrefix(resp.Header.Get("Location"), "/v2/"+tt.repo+"/blobs/uploads/") {
					t.Fatalf("Location %q", resp.Header.Get("Location"))
				}
				return
			}
			if got := resp.Header.Get("Location"); got != "/v2/"+tt.repo+"/blobs/"+d {
				t.Fatalf("Location %q", got)
			}
			e.wantBlob(tt.repo, layer)
		})
	}
	if n := e.blobFiles(d); n != 1 {
		t.Fatalf("%d files hold the layer, want 1", n)
	}
}

// An upload session is in the store: it survives a restart of the node.
func TestUploadSurvivesRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	data := randomBytes("resumable", 1<<20+123)
	half := len(data) / 2
	d := digestOf(data)

	resp, body := e.do(http.MethodPost, "/v2/resume/app/blobs/uploads/", nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	resp, body = e.do(http.MethodPatch, loc, data[:half],
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", half-1))
	wantStatus(t, resp, body, http.StatusAccepted)
	if got := resp.Header.Get("Range"); got != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("Range %q after the first half", got)
	}

	e.stop()
	e.start()

	resp, body = e.do(http.MethodGet, loc, nil)
	wantStatus(t, resp, body, http.StatusNoContent)
	if got := resp.Header.Get("Range"); got != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("Range %q after restart", got)
	}
	// A chunk that does not continue the session is refused with where
	// it stands.
	resp, body = e.do(http.MethodPatch, loc, data[:10], "Content-Range", "0-9")
	wantError(t, resp, body, http.StatusRequestedRangeNotSatisfiable, registry.CodeBlobUploadInvalid)
	resp, body = e.do(http.MethodPatch, loc, data[half:],
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", half, len(data)-1))
	wantStatus(t, resp, body, http.StatusAccepted)
	resp, body = e.do(http.MethodPut, loc+"?digest="+d, nil)
	wantStatus(t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		t.Fatalf("digest %s, want %s", got, d)
	}
	e.wantBlob("resume/app", data)
	if f := e.uploadFiles(); len(f) != 0 {
		t.Fatalf("upload files left: %v", f)
	}
	resp, body = e.do(http.MethodGet, loc, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUploadUnknown)
}

func TestUploadIsBoundToItsRepository(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, body := e.do(http.MethodPost, "/v2/bound/a/blobs/uploads/", nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	id := resp.Header.Get("Docker-Upload-UUID")
	resp, body = e.do(http.MethodPatch, "/v2/bound/b/blobs/uploads/"+id, []byte("x"))
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUploadUnknown)
}

func TestUploadWrongDigestKeepsSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	data := []byte("some bytes")
	resp, body := e.do(http.MethodPost, "/v2/wrong/blobs/uploads/", nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	resp, body = e.do(http.MethodPatch, loc, data)
	wantStatus(t, resp, body, http.StatusAccepted)
	resp, body = e.do(http.MethodPut, loc+"?digest="+digestOf([]byte("other bytes")), nil)
	wantError(t, resp, body, http.StatusBadRequest, registry.CodeDigestInvalid)
	if e.inStore(digestOf([]byte("other bytes"))) || e.inStore(digestOf(data)) {
		t.Fatal("a blob was stored from a mismatched upload")
	}
	resp, body = e.do(http.MethodPut, loc+"?digest="+digestOf(data), nil)
	wantStatus(t, resp, body, http.StatusCreated)
	e.wantBlob("wrong", data)
}

func TestExpireUploads(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	start := func(repo string) (string, string) {
		resp, body := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
		wantStatus(t, resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		resp, body = e.do(http.MethodPatch, loc, []byte("partial bytes"))
		wantStatus(t, resp, body, http.StatusAccepted)
		return loc, resp.Header.Get("Docker-Upload-UUID")
	}
	oldLoc, oldID := start("exp/old")

	// Young sessions stay.
	n, err := e.repos.ExpireUploads(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("ExpireUploads(1h) = %d, %v; want 0", n, err)
	}
	resp, body := e.do(http.MethodGet, oldLoc, nil)
	wantStatus(t, resp, body, http.StatusNoContent)

	e.clock.Advance(20 * time.Millisecond)
	newLoc, newID := start("exp/new")
	n, err = e.repos.ExpireUploads(ctx, 10*time.Millisecond)
	if err != nil || n != 1 {
		t.Fatalf("ExpireUploads(10ms) = %d, %v; want 1", n, err)
	}
	resp, body = e.do(http.MethodGet, oldLoc, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUploadUnknown)
	resp, body = e.do(http.MethodPatch, oldLoc, []byte("more"))
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUploadUnknown)
	if files := e.uploadFiles(); !slices.Equal(files, []string{newID}) || oldID == newID {
		t.Fatalf("upload files %v, want only the young session %s", files, newID)
	}
	resp, body = e.do(http.MethodGet, newLoc, nil)
	wantStatus(t, resp, body, http.StatusNoContent)

	e.clock.Advance(5 * time.Millisecond)
	n, err = e.repos.ExpireUploads(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("ExpireUploads(0) = %d, %v; want 1", n, err)
	}
	if files := e.uploadFiles(); len(files) != 0 {
		t.Fatalf("upload files %v after expiring all", files)
	}
	resp, body = e.do(http.MethodGet, newLoc, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUploadUnknown)
}

func TestCancelUpload(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, body := e.do(http.MethodPost, "/v2/cancel/blobs/uploads/", nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	resp, body = e.do(http.MethodPatch, loc, []byte("bytes"))
	wantStatus(t, resp, body, http.StatusAccepted)
	resp, body = e.do(http.MethodDelete, loc, nil)
	wantStatus(t, resp, body, http.StatusNoContent)
	if f := e.uploadFiles(); len(f) != 0 {
		t.Fatalf("upload files left: %v", f)
	}
	resp, body = e.do(http.MethodGet, loc, nil)
	wantError(t, resp, body, http.StatusNotFound, registry.CodeBlobUploadUnknown)
}
