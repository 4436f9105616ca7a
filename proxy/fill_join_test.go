package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/registry"
	"berth/test/testreg"
	"berth/upstream"
)

// A request checks the store, finds nothing, and only then joins the fills
// in flight; a fill of the same blob may commit and leave in between. The
// fill that request starts must find the blob in the store and read no byte
// from any source: one upstream GET per blob, whatever the interleaving
// (seen once as 2 GETs among 100 concurrent cold clients).
func TestFillStartedAfterAnEarlierFillCommittedReadsTheStore(t *testing.T) {
	data := testreg.Bytes(1<<20, 44)
	e := newEnv(t, envOpts{})
	first := &scriptedSource{name: "upstream", data: data}
	if err := waitFill(e.runScriptedFill(t, data, first)); err != nil {
		t.Fatal(err)
	}
	// The late request: its store check ran before the first fill
	// committed, its join after the fill left the group.
	late := &scriptedSource{name: "upstream", data: data}
	f := e.runScriptedFill(t, data, late)
	got, err := e.readFill(f, 0)
	if err != nil || string(got) != string(data) {
		t.Fatalf("late reader: %d bytes, %v; want the whole blob", len(got), err)
	}
	if err := waitFill(f); err != nil {
		t.Fatal(err)
	}
	if opens := late.opened(); len(opens) != 0 {
		t.Fatalf("the late fill opened its source %q; the store held the blob", opens)
	}
	if src := (&fillBlob{p: e.proxy, f: f}).Source(); src != registry.SourceStore {
		t.Errorf("the late fill's blob is reported from %v, want the store", src)
	}
}

// A request whose store read found no blob goes on, and a fill of the same
// blob may commit and leave before it does: before it looks for a copy
// stored for another route (which it would confirm with a HEAD), or, for a
// HEAD, before it looks for a fill in flight (without one it asks its
// sources). Either way it serves the stored blob, and neither the upstream
// nor a peer is asked again, not even with a HEAD, whose failure would fail
// a request the store answers.
func TestBlobMissedJustBeforeAFillCommittedIsServedFromTheStore(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 1<<20, 46)
	e.pushImage(t, "team/app", "v1", img)
	resp, body, err := e.do(t, http.MethodGet, "/v2/up/team/app/blobs/"+layer.String(), nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("first pull: %v, %d bytes, %v; want the blob", resp, len(body), err)
	}
	if err := e.proxy.WaitFills(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.up.Reset()
	// Requests whose store read ran before that fill committed go on now.
	tg := upstream.Target{Upstream: e.proxy.Router().Upstream("up"), Repo: "team/app"}
	d := layer.String()
	for _, head := range []bool{false, true} {
		b, err := e.proxy.notSeen(t.Context(), tg, registry.BlobRequest{Digest: registry.Digest(d), Head: head})
		if err != nil {
			t.Fatalf("head=%v: %v", head, err)
		}
		if b.Size() != int64(len(data)) || b.Source() != registry.SourceStore {
			t.Errorf("head=%v: %d bytes from %v, want %d from the store", head, b.Size(), b.Source(), len(data))
		}
		if head {
			continue
		}
		rc, err := b.Open(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes, %v; want the blob", len(got), err)
		}
	}
	// A HEAD that found no copy stored, and no fill in flight after the
	// fill left, with a peer ahead of the upstream (a node that does not
	// own the digest).
	peer := &scriptedSource{name: "owner", peer: true, data: data}
	b, err := e.proxy.headBlob(t.Context(), tg, fillKey(tg, d), d, []source{peer, upstreamSource{up: tg.Upstream, repo: tg.Repo, digest: d}})
	if err != nil || b.Size() != int64(len(data)) {
		t.Fatalf("HEAD: %v, %v; want the blob's size", b, err)
	}
	if n := peer.asked(); n != 0 {
		t.Errorf("the peer was asked %d times after the fill committed; want none", n)
	}
	if got := e.up.Requests(); len(got) != 0 {
		t.Errorf("the upstream saw %q after the fill committed; want nothing", got)
	}
	if n := e.cacheCount("blob", "revalidated"); n != 0 {
		t.Errorf("%v blob requests counted as revalidated; the fill had stored the blob for this repository", n)
	}
}

// The last byte goes out once the bytes verified, before the commit: a
// commit that fails then (here the blob's shard directory cannot be made)
// leaves the fill's readers with every byte, verified, and the store with
// nothing.
func TestFillCommitFailingAfterVerificationKeepsNothing(t *testing.T) {
	const size, half = 1 << 20, 1 << 19
	data := testreg.Bytes(size, 45)
	d := digestOf(data)
	e := newEnv(t, envOpts{})
	shard := filepath.Join(e.dataDir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")[:2])
	if err := os.MkdirAll(filepath.Dir(shard), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shard, nil, 0o640); err != nil { // a file where the directory goes
		t.Fatal(err)
	}
	release := make(chan struct{})
	f, rc := e.openHeldFill(t, data, release, half)
	close(release)
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reader: %d bytes, %v; want the whole blob", len(got), err)
	}
	if err := waitFill(f); err == nil {
		t.Fatal("the fill committed; want its commit to fail")
	}
	if e.stored(d) {
		t.Fatal("the blob was kept although its commit failed")
	}
}

// fileTaker is a writer that takes files, as an HTTP response does (it
// sends them with sendfile): it records which bytes came as a file.
type fileTaker struct {
	bytes.Buffer
	fromFiles int64
	// release, when set, is called once: when the first span of a file
	// comes, or, failing that, once every byte before heldAt came by copy,
	// so that a fill held there goes on either way.
	release func()
	heldAt  int64
}

func (w *fileTaker) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	w.releaseOnceCopied()
	return n, err
}

func (w *fileTaker) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			w.releaseNow()
			n, err := io.Copy(&w.Buffer, src)
			w.fromFiles += n
			return n, err
		}
	}
	n, err := io.Copy(&w.Buffer, src)
	w.releaseOnceCopied()
	return n, err
}

func (w *fileTaker) releaseOnceCopied() {
	if int64(w.Len()) >= w.heldAt-1 {
		w.releaseNow()
	}
}

func (w *fileTaker) releaseNow() {
	if w.release != nil {
		w.release()
		w.release = nil
	}
}

// A client that follows a fill into a writer that takes files gets the
// fill's bytes as spans of its file (sendfile, no copy through Berth) once
// its first bytes went out by copy, and every byte in order.
func TestFillFollowedIntoAFileTaker(t *testing.T) {
	const size, half = 1 << 20, 1 << 19
	data := testreg.Bytes(size, 46)
	e := newEnv(t, envOpts{})
	release := make(chan struct{})
	f, rc := e.openHeldFill(t, data, release, half)
	// The fill goes on once the follower took its first span of the file
	// (while the fill still held it at half, so its temporary file was
	// there to open), or, when it takes none, once it copied all it could.
	w := &fileTaker{release: func() { close(release) }, heldAt: half}
	done := make(chan error, 1)
	go func() {
		_, err := rc.(io.WriterTo).WriteTo(w)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes(), data) {
		t.Fatalf("the follower got %d bytes, not the blob's %d", w.Len(), size)
	}
	if w.fromFiles == 0 || w.fromFiles == size {
		t.Errorf("%d of %d bytes came as file spans; want all but the first bytes", w.fromFiles, size)
	}
	if err := waitFill(f); err != nil {
		t.Fatal(err)
	}
}

// openHeldFill starts a fill of data whose source holds at byte holdAt
// until release is closed, and opens a reader of it from the start (closed
// at the test's end).
func (e *env) openHeldFill(t *testing.T, data []byte, release chan struct{}, holdAt int64) (*fill, io.ReadCloser) {
	t.Helper()
	f := e.runScriptedFill(t, data, &scriptedSource{name: "upstream", data: data, script: []stream{{hold: release, holdAt: holdAt}}})
	if _, err := f.waitStarted(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc, err := (&fillBlob{p: e.proxy, f: f}).Open(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return f, rc
}
