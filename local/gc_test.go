package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/local"
	"berth/registry"
	"berth/store"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestGCGracePeriod(t *testing.T) {
	tests := []struct {
		name     string
		advance  time.Duration // how far the clock moves after the upload
		grace    time.Duration
		wantKept bool
	}{
		{name: "younger than grace", grace: time.Hour, wantKept: true},
		{name: "clock moved but still within grace", advance: 30 * time.Minute, grace: time.Hour, wantKept: true},
		{name: "older than grace", advance: 2 * time.Hour, grace: time.Hour},
		{name: "no grace", grace: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			ctx := context.Background()
			data := randomBytes("lonely", 4096)
			d := e.pushBlob("gc/grace", data)
			e.clock.Advance(tt.advance)
			rep, err := e.reclaim.GC(ctx, tt.grace)
			if err != nil {
				t.Fatal(err)
			}
			if e.inStore(d) != tt.wantKept {
				t.Fatalf("blob in store %v, want %v (report %+v)", !tt.wantKept, tt.wantKept, rep)
			}
			if tt.wantKept {
				if rep.BlobsDeleted != 0 || rep.BlobsKept != 1 {
					t.Fatalf("report %+v, want 1 kept", rep)
				}
				e.wantBlob("gc/grace", data)
				return
			}
			if rep.BlobsDeleted != 1 || rep.BytesFreed != int64(len(data)) {
				t.Fatalf("report %+v, want 1 blob and %d bytes freed", rep, len(data))
			}
			if n := e.blobFiles(d); n != 0 {
				t.Fatalf("%d files left for a collected blob", n)
			}
			if got := e.headBlob("gc/grace", d); got != http.StatusNotFound {
				t.Fatalf("HEAD after GC %d, want 404", got)
			}
			// Uploading it again works and brings it back.
			e.pushBlob("gc/grace", data)
			e.wantBlob("gc/grace", data)
		})
	}
}

func TestGCKeepsReferencedBlobs(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	im := newImage("kept", 3)
	e.push("gc/kept", "v1", im)
	idx := manifest{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{im.desc()}}.bytes()
	resp, body := e.putManifest("gc/kept", "multi", ociIndex, idx)
	wantStatus(t, resp, body, http.StatusCreated)
	rep, err := e.reclaim.GC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsDeleted != 0 || rep.ManifestsDeleted != 0 || rep.BlobsKept != len(im.blobs()) {
		t.Fatalf("report %+v, want everything kept", rep)
	}
	for _, b := range im.blobs() {
		e.wantBlob("gc/kept", b.data)
	}
	if _, got := e.getManifest("gc/kept", "multi"); string(got) != string(idx) {
		t.Fatal("index changed")
	}
	e.getManifest("gc/kept", im.digest)
}

func TestGCAfterManifestDelete(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	shared := newBlob(ociLayer, randomBytes("shared", 3000))
	own := newBlob(ociLayer, randomBytes("own", 2000))
	a := imageOf(newBlob(ociConfig, []byte(`{"a":1}`)), own, shared)
	b := imageOf(newBlob(ociConfig, []byte(`{"b":1}`)), shared)
	e.push("gc/a", "v1", a)
	e.push("gc/b", "v1", b)
	// An artifact whose subject is a, so a's deletion leaves it behind.
	resp, body := e.do(http.MethodDelete, "/v2/gc/a/manifests/"+a.digest, nil)
	wantStatus(t, resp, body, http.StatusAccepted)

	rep, err := e.reclaim.GC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsDeleted != 2 || rep.BytesFreed != a.config.desc.Size+own.desc.Size || rep.ManifestsDeleted != 1 {
		t.Fatalf("report %+v, want a's config and own layer (%d bytes) and a's manifest", rep, a.config.desc.Size+own.desc.Size)
	}
	for _, gone := range []blob{a.config, own} {
		if e.inStore(gone.desc.Digest) || e.blobFiles(gone.desc.Digest) != 0 {
			t.Fatalf("blob %s of the deleted manifest is still stored", gone.desc.Digest)
		}
		// Its link record goes with it.
		if linked, deleted, err := e.store.LinkState(ctx, store.LocalKey("gc/a"), gone.desc.Digest); err != nil || linked || deleted {
			t.Fatalf("link of collected blob %s in gc/a: linked %v, deleted %v, %v; want no record", gone.desc.Digest, linked, deleted, err)
		}
	}
	if _, err := e.store.GetManifest(ctx, a.digest); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted manifest body: %v, want not found", err)
	}
	if !e.inStore(shared.desc.Digest) {
		t.Fatal("the layer gc/b references was collected")
	}
	if _, got := e.getManifest("gc/b", "v1"); string(got) != string(b.body) {
		t.Fatal("gc/b:v1 changed")
	}
	for _, bl := range b.blobs() {
		e.wantBlob("gc/b", bl.data)
	}
	// A second run finds nothing.
	rep, err = e.reclaim.GC(ctx, 0)
	if err != nil || rep.BlobsDeleted != 0 || rep.ManifestsDeleted != 0 {
		t.Fatalf("second GC %+v, %v; want nothing to do", rep, err)
	}
	// Pushing a again works (its blobs uploaded again).
	e.push("gc/a", "v1", a)
	for _, bl := range a.blobs() {
		e.wantBlob("gc/a", bl.data)
	}
}

func TestGCNeverCollectsCachedBlobs(t *testing.T) {
	e := newEnv(t, envOptions{cachedPrefix: true})
	ctx := context.Background()
	layer := randomBytes("cached", 5000)
	d := e.cacheBlob("library/alpine", layer)
	// A local repository that mounted it and deleted it changes nothing.
	e.createRepo("gc/local", local.Mutable)
	resp, body := e.do(http.MethodPost, "/v2/gc/local/blobs/uploads/?mount="+d+"&from=hub/library/alpine", nil)
	wantStatus(t, resp, body, http.StatusCreated)
	resp, body = e.do(http.MethodDelete, "/v2/gc/local/blobs/"+d, nil)
	wantStatus(t, resp, body, http.StatusAccepted)
	e.clock.Advance(24 * time.Hour)
	rep, err := e.reclaim.GC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsDeleted != 0 || !e.inStore(d) || e.blobFiles(d) != 1 {
		t.Fatalf("cached blob collected (report %+v)", rep)
	}
	resp, body = e.do(http.MethodGet, "/v2/hub/library/alpine/blobs/"+d, nil)
	wantStatus(t, resp, body, http.StatusOK)
	if string(body) != string(layer) {
		t.Fatal("cached blob bytes changed")
	}

	// A cached manifest (an image record of the cached repository) keeps
	// its body and blobs too.
	cfg := e.cacheBlob("library/alpine", []byte(`{"cached":true}`))
	im := imageOf(newBlob(ociConfig, []byte(`{"cached":true}`)), newBlob(ociLayer, layer))
	if cfg != im.config.desc.Digest {
		t.Fatal("config digest mismatch")
	}
	bt := e.store.NewBatch()
	if err := bt.PutManifest(im.digest, &store.Manifest{MediaType: ociManifest, Body: im.body}); err != nil {
		t.Fatal(err)
	}
	if err := bt.PutImage(store.CachedKey("hub", "library/alpine"), im.digest, store.Image{PushedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := bt.Commit(); err != nil {
		t.Fatal(err)
	}
	rep, err = e.reclaim.GC(ctx, 0)
	if err != nil || rep.BlobsDeleted != 0 || rep.ManifestsDeleted != 0 {
		t.Fatalf("GC with a cached manifest: %+v, %v", rep, err)
	}
	if _, err := e.store.GetManifest(ctx, im.digest); err != nil {
		t.Fatalf("cached manifest: %v", err)
	}
}

// A garbage collection (with no grace) between a push's blobs and its
// manifest takes the blobs: the manifest is refused with
// MANIFEST_BLOB_UNKNOWN, and the push, started again, gets through and
// keeps its blobs through the next collection.
func TestGCBetweenBlobsAndManifest(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	im := newImage("gc-between", 2)
	for _, b := range im.blobs() {
		e.pushBlob("gc/between", b.data)
	}
	rep, err := e.reclaim.GC(ctx, 0)
	if err != nil || rep.BlobsDeleted != len(im.blobs()) {
		t.Fatalf("GC = %+v, %v; want the %d unreferenced blobs deleted", rep, err, len(im.blobs()))
	}
	resp, body := e.putManifest("gc/between", "v1", ociManifest, im.body)
	wantError(t, resp, body, http.StatusBadRequest, registry.CodeManifestBlobUnknown)

	e.push("gc/between", "v1", im)
	if rep, err := e.reclaim.GC(ctx, 0); err != nil || rep.BlobsDeleted != 0 {
		t.Fatalf("GC after the push = %+v, %v; want nothing deleted", rep, err)
	}
	for _, b := range im.blobs() {
		e.wantBlob("gc/between", b.data)
	}
}

// Pushes running while garbage collection (with no grace) runs again and
// again, under the race detector: a push may be refused (a blob it uploaded
// was collected before its manifest came, as TestGCBetweenBlobsAndManifest
// shows step by step) and is then retried, but every manifest that was
// accepted has all its blobs afterwards. The collector runs a fixed number
// of times, each after a push attempt ended, so that pushes still retrying
// then finish without it.
func TestGCConcurrentWithPushes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	const pushes, collections = 12, 6

	st := &pushStats{attempted: make(chan struct{}, pushes)}
	gcDone := make(chan error, 1)
	go func() {
		for range collections {
			<-st.attempted
			if _, err := e.reclaim.GC(ctx, 0); err != nil {
				gcDone <- err
				return
			}
		}
		gcDone <- nil
	}()

	results := make([]*pushedImage, pushes)
	errs := make([]error, pushes)
	var wg sync.WaitGroup
	for i := range pushes {
		wg.Go(func() {
			img, err := random.Image(2048, 3)
			if err != nil {
				errs[i] = err
				return
			}
			results[i], errs[i] = pushImage(e, fmt.Sprintf("gcrace/r%d", i%5), fmt.Sprintf("t%d", i), img, st)
		})
	}
	if err := <-gcDone; err != nil {
		t.Fatalf("GC: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	t.Logf("%d pushes through %d collections with %d retries", pushes, collections, st.retries.Load())
	// One more collection after the pushes: nothing referenced may go.
	if _, err := e.reclaim.GC(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range results {
		if d, body := e.getManifest(p.repo, p.tag); d != p.digest || string(body) != string(p.raw) {
			t.Fatalf("%s:%s is %s, want %s", p.repo, p.tag, d, p.digest)
		}
		for bd, want := range p.blobs {
			resp, body := e.do(http.MethodGet, "/v2/"+p.repo+"/blobs/"+bd, nil)
			wantStatus(t, resp, body, http.StatusOK)
			if !bytes.Equal(body, want) {
				t.Fatalf("%s blob %s: %d bytes that differ from the %d pushed", p.repo, bd, len(body), len(want))
			}
		}
	}
}

// pushStats are shared by concurrent pushes.
type pushStats struct {
	retries atomic.Int64
	// attempted is sent to, when it has room, as each attempt ends.
	attempted chan struct{}
}

// pushedImage is an image a push got accepted.
type pushedImage struct {
	repo, tag string
	digest    string
	raw       []byte
	blobs     map[string][]byte
}

// pushImage pushes img over HTTP (blobs, then the manifest), starting again
// when garbage collection took a blob between the two. It runs off the test
// goroutine, so it returns errors instead of failing the test.
func pushImage(e *env, repo, tag string, img v1.Image, st *pushStats) (*pushedImage, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	p := &pushedImage{repo: repo, tag: tag, digest: digestOf(raw), raw: raw, blobs: map[string][]byte{digestOf(cfg): cfg}}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		p.blobs[digestOf(b)] = b
	}
	for attempt := range 1000 {
		if attempt > 0 {
			st.retries.Add(1)
		}
		// The blobs go up in parallel, as clients send them.
		var wg sync.WaitGroup
		upErrs := make(chan error, len(p.blobs))
		for d, b := range p.blobs {
			wg.Go(func() {
				if st, body, err := httpDo(e, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, b, ""); err != nil {
					upErrs <- err
				} else if st != http.StatusCreated {
					upErrs <- fmt.Errorf("blob upload: status %d: %s", st, body)
				}
			})
		}
		wg.Wait()
		close(upErrs)
		if err := <-upErrs; err != nil {
			return nil, err
		}
		status, body, err := httpDo(e, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, raw, string(mt))
		select {
		case st.attempted <- struct{}{}:
		default:
		}
		switch {
		case err != nil:
			return nil, err
		case status == http.StatusCreated:
			return p, nil
		case status == http.StatusBadRequest && bytes.Contains(body, []byte(registry.CodeManifestBlobUnknown)):
			// A blob was collected between its upload and the manifest.
		default:
			return nil, fmt.Errorf("manifest PUT: status %d: %s", status, body)
		}
	}
	return nil, errors.New("the push never got through")
}

// httpDo is a request that is safe to run off the test goroutine.
func httpDo(e *env, method, path string, body []byte, contentType string) (int, []byte, error) {
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
